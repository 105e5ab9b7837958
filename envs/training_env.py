"""Training a target network, as a Gymnasium environment."""

from __future__ import annotations

import math
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from traingym.envs.config import TrainingEnvConfig, field_names
from traingym.envs.hparams import initial_hparams, make_optimizer, moved_hparams, set_optimizer_hparams
from traingym.envs.monitoring.monitor import MAX_LOSS, OBS_BOUND, TRAINING_FIELDS, RunStatus, TrainingMonitor
from traingym.envs.monitoring.neuron_log import ValidationPass
from traingym.envs.monitoring.token_monitor import TokenRelevanceMonitor
from traingym.envs.tasks.augmentation import decorrelate_inputs
from traingym.envs.tasks.base import Instance, Split, TaskFamily
from traingym.envs.tasks.registry import make_task
from traingym.envs.torch_threads import torch_threads
from traingym.protocol.moves import KNOBS, SCALE_DOWN, SCALE_UP, action_to_move
from traingym.protocol.report import finite

__all__ = ["MAX_LOSS", "OBS_BOUND", "TRAINING_FIELDS", "TrainingEnv"]

MASK_SEED_SALT = 0x6D61736B
"""XOR-ed into the augmentation seed to seed the input-masking generator."""
METRIC_CHUNK = 64
"""Training steps whose outputs are kept for the accuracy count before it is reduced (bounds memory)."""


class TrainingEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """
    ## Description
    One episode is one training run, from scratch, of a small target network on one task instance (a dataset
    split, an architecture, initial hyperparameters that may be bad, optional label noise). The agent steers the
    run: every step it nudges the learning rate, weight decay, augmentation strength and the weights of the
    neurons that most drove the validation errors; then the env runs K optimizer steps and evaluates on a fixed
    validation buffer.

    Text tasks (``reviews_bert``, ``reviews_shortcut``: a small BERT trained from scratch on review sentiment)
    also run token relevance after each validation, on the errors of a *diagnostic* buffer held out from the
    training data (same distribution as training: a planted shortcut token occurs there, never in validation or
    test). Over-relevant tokens are reported, emitted as ``over_relevant_token`` events, observed, and masked
    first by augmentation (see :mod:`traingym.envs.tasks.reviews` and :mod:`traingym.envs.monitoring.token_monitor`).
    Image and table tasks explain the validation errors with input relevance instead: over-relevant input features
    are reported (``flagged_inputs``), emitted as ``over_relevant_input`` events, observed, and decorrelated from
    the label first by augmentation (:mod:`traingym.envs.monitoring.input_relevance`): while features are
    flagged, level 1 only decorrelates them and level k adds the family's own augmentation at level k - 1
    (:meth:`family_aug_level`).

    ## Action Space
    ``MultiDiscrete([3, 3, 3, 3])``, one sub-action per knob, 0 = decrease, 1 = keep, 2 = increase:

    | knob | decrease | increase | bounds |
    |---|---|---|---|
    | learning rate | x0.5 | x2 | [1e-6, 100] |
    | weight decay | x1/3 | x3 | [1e-7, 0.1] |
    | augmentation level | -1 | +1 | 0..4 |
    | flagged-neuron weights | x0.8 | x1.25 | incoming weights of the top-k units per layer |

    ``DiscreteActionWrapper`` flattens this to ``Discrete(81)`` for DQN.

    With ``mask_grid = G`` (image tasks; ``TrainGym/DigitsPatchPathologies-v0`` registers G = 4) the agent, not the
    env, picks which inputs a step decorrelates: ``MultiDiscrete([3, 3, 3, 3, G^2 + 1])``, the fifth entry the cell
    of a G x G grid over the image whose pixels this step's K training batches decorrelate from the label (0 none,
    c the c-th cell, row-major). Augmentation is then the family's own at the knob's level, flagged or not.

    ## Observation Space
    A ``Dict`` with the keys chosen by ``obs_keys`` (all float32 Boxes in [-10, 10], always finite):

    - ``"training_stats"`` (22,): log10 LR, log10 WD, augmentation level / 4, progress t/T, train loss, train
      accuracy, validation loss, validation accuracy, loss gap (val - train), accuracy gap (train - val),
      least-squares slopes of val loss, val accuracy and loss gap over the last ``history_len`` steps, mean
      dead-unit fraction, log10 gradient norm and log10 weight-change norm of up to 4 hidden layers.
    - ``"neurons"``: the compressed neuron log (flagged-neuron importances per layer slot, per-layer summaries,
      event counts); see :mod:`traingym.envs.monitoring.neuron_features`. Then 12 relevance features (zeros with
      ``relevance=False``): text tasks the top-5 tokens' squashed z and relevance share and the numbers flagged
      (:mod:`traingym.envs.monitoring.token_monitor`); image and table tasks the same for input features
      (:mod:`traingym.envs.monitoring.input_relevance`), with ``mask_grid`` then per cell a squashed z (where the
      errors' relevance concentrates) and its share of pixels among the sticky flagged ones (also in
      ``info["cell_relevance"]`` and ``info["cell_flagged"]``, beside ``info["mask_cell"]``).
    - ``"diagnosis"``: the advisor's diagnosis text encoded by a language model, plus one-hot findings and the
      one-hot suggested move; see :mod:`traingym.advisors`.

    ## Rewards
    The change in validation accuracy since the previous step, so an episode's return is the final minus the
    initial (untrained) validation accuracy (text tasks: the clean validation buffer, not the diagnostic one).
    On divergence the reward is ``-divergence_penalty`` (default -1).
    Test accuracy is reported in ``info`` at the end of an episode and never rewarded.

    ## Starting State
    ``reset(seed=...)`` draws an instance from the configured instance set (``train``: 512 fixed instances,
    ``test``: 128 held-out instances on disjoint data splits, ``sampled``: fresh draws) and initialises a new
    network; ``reset(options={"instance": {...}})`` or ``{"instance_index": i}`` picks one explicitly.

    ## Episode End
    - Termination: divergence: a non-finite or exploding mean training loss (above ``max_loss``) or weights
      whose global norm is non-finite or exceeds ``max_weight_norm``.
    - Truncation: after ``horizon`` env steps (default 20; the env truncates itself, so that it knows the final
      step and can report test accuracy). The registered ``max_episode_steps`` equals the default horizon; to
      change the episode length pass both: ``gym.make(id, horizon=T, max_episode_steps=T)``.

    ## Step phases
    ``step`` is composed of public phases, so that the batched vector envs (:mod:`traingym.envs.batched`) run the
    same code for everything but the K optimizer steps, which they replace with one batched computation:

    - :meth:`begin_step` (the move), then the K steps: :meth:`train_steps` here, or a batched env's computation
      built from :meth:`draw_batch_indices`, :meth:`training_batches` (flagged inputs masked) and
      :meth:`augment_batch` (which a batched env calls once on a sub-env's K batches as one);
    - :meth:`finish_training` (divergence, the neuron log's training statistics), then :meth:`end_step`
      (validation, relevance, reward, observation, info; a batched env may hand it the validation forward pass,
      run for all its sub-envs at once).

    Read-only properties give the state the phases leave: :attr:`model`, :attr:`split`, :attr:`optimizer`,
    :attr:`lr`, :attr:`weight_decay`, :attr:`aug_level`, :attr:`elapsed_steps`, :attr:`scaled_neurons`,
    :attr:`torch_generator`, :attr:`aug_generator`, :attr:`explains_inputs`, :attr:`token_relevance`.

    ## Arguments
    Every field of :class:`TrainingEnvConfig` is a keyword argument, plus ``render_mode="ansi"``.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - set(field_names()))
        if unknown:
            raise ValueError(f"unknown TrainingEnv argument(s) {unknown}; valid arguments: {field_names()}")
        if render_mode not in (None, "ansi"):
            # SB3's make_vec_env asks every env for "rgb_array"; refusing would break it, so warn and render nothing.
            gym.logger.warn(f"render_mode {render_mode!r} is not supported (only 'ansi'); render() returns None")
        self.config = TrainingEnvConfig(**kwargs)
        self.render_mode = render_mode
        self.task: TaskFamily = make_task(self.config.task, self.config)
        if self.config.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device={self.config.device!r} but no CUDA device is available; use device='cpu'")
        self.device = torch.device(self.config.device)
        if self.config.mask_grid and self.task.vocabulary() is not None:
            raise ValueError(f"mask_grid={self.config.mask_grid} needs an image task; {self.config.task!r} is a text "
                             "task (its augmentation masks the flagged tokens)")
        cells = self.config.mask_grid ** 2
        # With mask_grid the agent picks the cell to decorrelate: a fifth entry, 0 (none) .. cells.
        self.action_space = spaces.MultiDiscrete([3] * len(KNOBS) + ([cells + 1] if cells else []))
        # Neuron log, events, history, report and observation: the code the training doctor shares.
        self._monitor = TrainingMonitor(self.config, self.task.vocabulary())
        self._events = self._monitor.events
        self._detector = self._monitor.detector
        self._neuron_features = self._monitor.neuron_features
        self._diagnosis = self._monitor.diagnosis
        self._relevance = self._monitor.relevance
        self.observation_space = self._monitor.observation_space
        self._instances: list[Instance] | None = None
        self._closed = False
        self._model: torch.nn.Module | None = None
        self._task_summary: dict[str, Any] = {}
        self._split: Split | None = None
        self._mask_cell = 0
        """With ``mask_grid``: the cell (1-based; 0 none) the current step decorrelates."""

    @property
    def advisor_accounting(self) -> dict[str, Any]:
        """Latest run-time accounting of the advisor (latency, caches, tokens; keys
        :data:`~traingym.advisors.channel.ACCOUNTING_KEYS`). Not reproducible, so it is merged into
        ``info["advisor"]`` only with ``advisor_accounting=True``."""
        return self._monitor.advisor_accounting

    @property
    def _log(self) -> Any:
        """The run's :class:`~traingym.envs.monitoring.neuron_log.NeuronLog` (None before the first reset)."""
        return self._monitor.log

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        with torch_threads(self.config.num_threads):
            return self._reset(options or {})

    def _reset(self, options: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        instance, index = self._choose_instance(options)
        self._torch_gen = torch.Generator().manual_seed(int(self.np_random.integers(2**63 - 1)))
        aug_seed = int(self.np_random.integers(2**63 - 1))
        self._aug_gen = torch.Generator(device=self.device).manual_seed(aug_seed)
        # Masking of flagged inputs draws from its own stream, derived from the same draw (no extra np_random draw,
        # so runs that never mask replay exactly as before masking existed).
        self._mask_gen = torch.Generator(device=self.device).manual_seed(aug_seed ^ MASK_SEED_SALT)
        split = self.task.split(instance, self.config.val_size)
        self._split = split.to(self.device)
        self._model = self.task.build_model(instance, split.n_classes, self._torch_gen).to(self.device)
        self._monitor.reset(self.task.hidden_layers(self._model), self.task.input_shape(instance))
        self._instance, self._instance_index = instance, index
        self._task_summary = self._describe_task()
        self._lr, self._wd, self._aug = initial_hparams(instance)
        self._optimizer = make_optimizer(self._model, self._lr, self._wd, self.config.optimizer,
                                         self.config.momentum, self.task.fused_adam)
        self._t = 0
        self._horizon = self.config.horizon
        self._train_loss, self._train_acc = math.log(split.n_classes), 1.0 / split.n_classes
        self.task.set_flagged_tokens(())
        self._val_loss, self._val_acc = self._validate()
        self._events.end_step()
        self._initial_val_acc = self._val_acc
        self._last_move = (0, 0, 0, 0)
        self._mask_cell = 0
        self._diverged = False
        self._scaled = 0
        obs, extra = self._observe()
        info = {"instance": dict(instance), "instance_index": index, **self._step_info(), **extra}
        return obs, info

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], SupportsFloat, bool, bool, dict[str, Any]]:
        with torch_threads(self.config.num_threads):
            self.begin_step(action)
            return self.end_step(*self.finish_training(*self.train_steps()))

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return getattr(self, "_last_render", None) or self._status_line(0.0)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._monitor.close()

    # ------------------------------------------------------------------ step phases
    # Public so that the batched envs compose them (see "Step phases" in the class docstring); ``step`` is exactly
    # begin_step -> train_steps -> finish_training -> end_step.
    def begin_step(self, action: np.ndarray) -> None:
        """The part of a step before the K optimizer steps: the move (hyperparameters, flagged-neuron scaling,
        see :attr:`scaled_neurons`) and the step counter."""
        if self._model is None or self._split is None:
            raise RuntimeError("call reset() before step()")
        cell = 0
        if self.config.mask_grid:
            entries = np.asarray(action).reshape(-1)
            cells = self.config.mask_grid ** 2
            if (entries.shape != (len(KNOBS) + 1,) or entries.dtype.kind not in "biuf"
                    or not 0 <= entries[-1] <= cells or entries[-1] != int(entries[-1])):
                raise ValueError(f"with mask_grid={self.config.mask_grid} an action has {len(KNOBS) + 1} entries, "
                                 f"the knobs' in {{0, 1, 2}} and a cell in 0..{cells}, got {entries.tolist()}")
            action, cell = entries[:-1], int(entries[-1])
        move = action_to_move(action)  # validated before anything changes
        self._mask_cell = cell
        self._apply_move(move)
        self._t += 1

    def train_steps(self) -> tuple[float, float, float]:
        """The single env's K optimizer steps; returns the mean training loss, the training accuracy and the
        global weight norm after them, for :meth:`finish_training`. The batched envs replace this phase alone."""
        assert self._model is not None
        model, k = self._model, self.config.steps_per_action
        model.train()
        x_batches, y_batches = self.training_batches(self.draw_batch_indices())
        # Metrics are gathered per step and reduced in chunks: a few tensor ops per chunk instead of per step.
        losses: list[torch.Tensor] = []
        outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        with self.task.training_context(self._torch_gen, self.device):
            for xb, yb in zip(x_batches, y_batches):
                xb, yb = self.augment_batch(xb, yb)
                logits = model(xb)
                loss = F.cross_entropy(logits, yb)
                self._optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self._optimizer.step()
                # Kept as they are (no per-step detach): their graph is freed by backward, and the metrics below
                # are computed without grad.
                losses.append(loss)
                outputs.append((logits, yb))
                if len(outputs) == METRIC_CHUNK:
                    correct += _count_correct(outputs)
        with torch.no_grad():
            if outputs:
                correct += _count_correct(outputs)
            weight_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(list(model.parameters()))))
            mean_loss, accuracy, norm = torch.stack(
                [torch.stack(losses).sum() / k, correct.float() / y_batches.numel(), weight_norm]).tolist()  # one sync
        return mean_loss, accuracy, norm

    def draw_batch_indices(self) -> torch.Tensor:
        """``(K, batch)`` training-set indices of the next K steps, drawn from :attr:`torch_generator` (a batched
        env draws them here too, so its sub-envs see the single env's batches)."""
        assert self._split is not None
        k, b = self.config.steps_per_action, min(self.config.batch_size, self._split.x_train.shape[0])
        return torch.randint(self._split.x_train.shape[0], (k, b), generator=self._torch_gen).to(self.device)

    def training_batches(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The K training batches at ``indices`` (:meth:`draw_batch_indices`): inputs ``(K, B, ...)`` with the
        move's target inputs decorrelated (:meth:`mask_inputs`) and labels ``(K, B)``; not yet augmented by the
        family (:meth:`augment_batch`)."""
        split = self._split
        assert split is not None
        return self.mask_inputs(_take_rows(split.x_train, indices)), _take_rows(split.y_train, indices)

    def mask_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The next K training batches ``(K, B, ...)`` with the move's target inputs decorrelated from the label
        (:func:`~traingym.envs.tasks.augmentation.decorrelate_inputs`; images and tables, before the family's
        augmentation): the over-relevant input features flagged so far, at the current augmentation level; with
        ``mask_grid``, the agent's cell instead, always. Unchanged, with nothing drawn, when there is nothing to
        decorrelate (level 0 or nothing flagged; cell 0)."""
        if self.config.mask_grid:
            if not self._mask_cell or self._monitor.cells is None:
                return x
            targets: tuple[int, ...] = tuple(self._monitor.cells[self._mask_cell - 1].tolist())
            level = 1
        else:
            inputs = self._monitor.inputs
            if inputs is None or not inputs.flagged_ids or self._aug == 0:
                return x
            targets, level = inputs.flagged_ids, self._aug
        return decorrelate_inputs(x.flatten(2), targets, level, self._mask_gen).reshape(x.shape)

    def family_aug_level(self) -> int:
        """The level of the family's own augmentation (shifts and noise, feature noise): the knob's level, one
        lower while input features are flagged. Augmentation spends its first level on the flagged features, as the
        text families' level 1 mostly masks flagged tokens: on 8x8 digits the family's level 1 (one-pixel shifts,
        pixel noise) costs far more than a shortcut, so a remedy that brought it along did more harm than good
        (``docs/results/information_gap.md``)."""
        inputs = self._monitor.inputs
        flagged_first = not self.config.mask_grid and inputs is not None and inputs.flagged_ids
        return max(0, self._aug - 1) if flagged_first else self._aug

    def augment_batch(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One training batch augmented by the family at :meth:`family_aug_level`, drawing from
        :attr:`aug_generator` (unchanged, with nothing drawn, at level 0)."""
        level = self.family_aug_level()
        if level > 0:
            xb, yb = self.task.augment(xb, yb, level, self._aug_gen)
        return xb, yb

    def finish_training(self, mean_loss: float, accuracy: float, weight_norm: float) -> tuple[float, float, bool]:
        """After the K steps (the model's parameters and last-step gradients in place): the divergence check and
        the neuron log's training statistics; returns the mean train loss (capped), train accuracy and whether the
        run diverged, for :meth:`end_step`."""
        return self._monitor.training_outcome(mean_loss, accuracy, weight_norm)

    def end_step(self, train_loss: float, train_acc: float, diverged: bool, validation: ValidationPass | None = None
                 ) -> tuple[dict[str, np.ndarray], SupportsFloat, bool, bool, dict[str, Any]]:
        """The rest of the step after :meth:`finish_training`: validation and relevance (unless diverged), reward,
        events, observation and info (test accuracy at the episode's end); returns ``step``'s tuple.
        ``validation``: the validation forward pass of the current parameters on :attr:`split`'s validation
        buffer, already run by a batched env for all its sub-envs at once (None: run here)."""
        assert self._split is not None
        self._train_loss, self._train_acc = train_loss, train_acc
        previous = self._val_acc
        if diverged:
            self._diverged = True
            self._val_loss, self._val_acc = self._monitor.diverged(self._t, train_loss, self._split.n_classes)
            reward = -self.config.divergence_penalty
        else:
            self._val_loss, self._val_acc = self._validate(validation)
            self._update_relevance()
            reward = self._val_acc - previous
        self._events.end_step()
        terminated = diverged
        truncated = (not terminated) and self._t >= self._horizon
        obs, extra = self._observe()
        info = {**self._step_info(), **extra}
        if terminated or truncated:
            test_loss, test_acc = self._evaluate(self._split.x_test, self._split.y_test)
            info.update({"test_accuracy": test_acc, "test_loss": test_loss, "instance": dict(self._instance),
                         "initial_val_accuracy": self._initial_val_acc})
        if self.render_mode == "ansi":
            self._last_render = self._status_line(reward)
        return obs, float(reward), terminated, truncated, info

    # ------------------------------------------------------------------ state the phases leave (read-only)
    @property
    def model(self) -> torch.nn.Module | None:
        """The target network being trained (None before the first reset); a batched env trains it in place or
        copies its parameters in and out around the K steps."""
        return self._model

    @property
    def split(self) -> Split | None:
        """The episode's data split on the env's device (None before the first reset)."""
        return self._split

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The network's optimizer, its hyperparameters set by the last move (after reset)."""
        return self._optimizer

    @property
    def lr(self) -> float:
        """The current learning rate (after reset)."""
        return self._lr

    @property
    def weight_decay(self) -> float:
        """The current weight decay (after reset)."""
        return self._wd

    @property
    def aug_level(self) -> int:
        """The augmentation knob's current level, 0..4 (after reset); see :meth:`family_aug_level`."""
        return self._aug

    @property
    def elapsed_steps(self) -> int:
        """Env steps taken in this episode (after reset)."""
        return self._t

    @property
    def scaled_neurons(self) -> int:
        """Neurons whose incoming weights the last move scaled (0: the model's weights are as the K steps left
        them; otherwise a copy of the weights is stale)."""
        return self._scaled

    @property
    def torch_generator(self) -> torch.Generator:
        """The episode's generator of initial weights, batch indices and dropout seeds (after reset): whoever runs
        the K steps draws from it in the single env's order, or the episode changes."""
        return self._torch_gen

    @property
    def aug_generator(self) -> torch.Generator:
        """The generator of the family's augmentation (after reset), drawn in step order."""
        return self._aug_gen

    @property
    def explains_inputs(self) -> bool:
        """Whether the validation of the step in progress (after :meth:`begin_step`; at reset, of the reset) runs
        input relevance: what a batched env's validation pass must then compute for :meth:`end_step`."""
        return self._monitor.explains_inputs(self._t)

    @property
    def token_relevance(self) -> TokenRelevanceMonitor | None:
        """Text tasks' token relevance monitor, run by :meth:`end_step` (None for other tasks or with
        ``relevance=False``); its ``cadence`` decides which steps compute it."""
        return self._relevance

    # ------------------------------------------------------------------ internals
    def _choose_instance(self, options: dict[str, Any]) -> tuple[Instance, int | None]:
        unknown = sorted(set(options) - {"instance", "instance_index"})
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; use 'instance' (a dict) or 'instance_index'")
        if "instance" in options:
            instance = dict(options["instance"])
            instance.setdefault("family", self.task.name)
            self.task.validate_instance(instance)
            return instance, None
        if self.config.instance_set == "sampled":
            split_seed = int(self.np_random.integers(2_000_000, 2**31 - 1))
            return self.task.sample_instance(self.np_random, self.config.optimizer, split_seed), None
        instances = self.instances
        if "instance_index" in options:
            index = int(options["instance_index"])
            if not 0 <= index < len(instances):
                raise ValueError(f"instance_index must be in [0, {len(instances) - 1}], got {index}")
        else:
            index = int(self.np_random.integers(len(instances)))
        return dict(instances[index]), index

    @property
    def instances(self) -> list[Instance]:
        """The fixed instance set this env draws from (``train`` or held-out ``test``)."""
        if self._instances is None:
            which = "train" if self.config.instance_set == "sampled" else self.config.instance_set
            self._instances = self.task.instance_set(which, self.config.optimizer)
        return self._instances

    def _apply_move(self, move: tuple[int, ...]) -> None:
        d_scale = move[3]
        self._lr, self._wd, self._aug = moved_hparams(self._lr, self._wd, self._aug, move)
        set_optimizer_hparams(self._optimizer, self._lr, self._wd)
        self._scaled = 0
        if d_scale != 0 and self._log is not None:
            self._scaled = self._log.scale_flagged(SCALE_UP if d_scale > 0 else SCALE_DOWN)
        self._last_move = move

    def _validate(self, computed: ValidationPass | None = None) -> tuple[float, float]:
        """Validation pass on the fixed buffer; refreshes the neuron log and flagged neurons."""
        assert self._model is not None and self._split is not None
        return self._monitor.validate(self._model, self._split.x_val, self._split.y_val, self._t, self._train_loss,
                                      computed)

    def _update_relevance(self) -> None:
        """Text tasks: token relevance on the diagnostic buffer's errors; hands the flagged tokens to the
        family's augmentation (see :mod:`traingym.envs.monitoring.token_monitor`). Runs after every step's validation
        but not at reset: the untrained network has learned no reliance to diagnose."""
        if self._relevance is None:
            return
        assert self._model is not None and self._split is not None
        if self._split.x_diag is None or self._split.y_diag is None:
            raise ValueError(f"task {self.task.name!r} has a vocabulary but its split has no diagnostic buffer")
        self._relevance.update(self._model, self._split.x_diag, self._split.y_diag, self._t)
        self.task.set_flagged_tokens(self._relevance.flagged_ids)

    @torch.no_grad()
    def _evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        assert self._model is not None
        self._model.eval()
        logits = self._model(x)
        loss, acc = torch.stack([F.cross_entropy(logits, y), (logits.argmax(1) == y).float().mean()]).tolist()
        return finite(min(loss, MAX_LOSS), MAX_LOSS), float(acc)

    def _status(self) -> RunStatus:
        return RunStatus(self._t, self._horizon, self._lr, self._wd, self._aug, self._train_loss, self._train_acc,
                         self._val_loss, self._val_acc, self._diverged)

    def _describe_task(self) -> dict[str, Any]:
        # No env id and a neutral family name: "ReviewsShortcut" would tell an advisor what to look for.
        assert self._model is not None and self._split is not None
        return {"family": self.task.report_name or self.task.name, "modality": self.task.modality,
                "n_classes": self._split.n_classes, "model": self.task.describe(self._instance),
                "n_params": int(sum(p.numel() for p in self._model.parameters()))}

    def _task_info(self) -> dict[str, Any]:
        """The report's task block: fixed for the episode (described once at reset), a fresh copy per report."""
        return dict(self._task_summary)

    def report(self) -> dict[str, Any]:
        """The bounded JSON-able :ref:`TrainingReport <report>` of the current state, as advisors read it."""
        return self._monitor.report(self._task_info(), self._status())

    def _observe(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return self._monitor.observe(self._task_info(), self._status(), self.report)

    def _step_info(self) -> dict[str, Any]:
        return {
            "step": self._t, "lr": self._lr, "weight_decay": self._wd, "aug_level": self._aug,
            "train_loss": self._train_loss, "train_accuracy": self._train_acc,
            "val_loss": self._val_loss, "val_accuracy": self._val_acc,
            "move": list(self._last_move), "scaled_neurons": self._scaled, "diverged": self._diverged,
            **self._cell_info(),
        }

    def _cell_info(self) -> dict[str, Any]:
        """With ``mask_grid``: the cell the last step decorrelated and the per-cell features that the ``"neurons"``
        block ends with (the same numbers, for controllers that read ``info``)."""
        if not self.config.mask_grid:
            return {}
        inputs = self._monitor.inputs
        none = np.zeros(self.config.mask_grid ** 2, dtype=np.float32)
        relevance, flagged = (inputs.cell_relevance(), inputs.cell_flagged()) if inputs is not None else (none, none)
        return {"mask_cell": self._mask_cell, "cell_relevance": [round(float(v), 4) for v in relevance],
                "cell_flagged": [round(float(v), 4) for v in flagged]}

    def _status_line(self, reward: float) -> str:
        return (f"t={self._t:3d}/{self._horizon} lr={self._lr:.2e} wd={self._wd:.1e} aug={self._aug} "
                f"train_loss={self._train_loss:.3f} val_loss={self._val_loss:.3f} val_acc={self._val_acc:.3f} "
                f"move={list(self._last_move)} reward={reward:+.3f}{' DIVERGED' if self._diverged else ''}")


@torch.no_grad()
def _count_correct(outputs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Correct predictions in a non-empty list of ``(logits, labels)`` batches of equal size; empties the list."""
    logits, labels = (torch.stack(t) for t in zip(*outputs))
    outputs.clear()
    return (logits.argmax(-1) == labels).sum()


def _take_rows(t: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``t[indices]`` for an index tensor of any shape, as one ``index_select`` on the flattened indices: several
    times faster on the CPU than advanced indexing with a 2-D index, and the same values."""
    return t.index_select(0, indices.flatten()).view(*indices.shape, *t.shape[1:])
