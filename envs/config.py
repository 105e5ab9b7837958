"""The environment's configuration: one frozen dataclass, validated on construction."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from traingym.protocol.checks import check_range
from traingym.protocol.choices import CallPolicy, EncoderName, check_device, choice_values

OBS_KEYS: tuple[str, ...] = ("training_stats", "neurons", "diagnosis")
"""Observation keys an env can emit; ``obs_keys`` picks a non-empty subset (ablations drop any of them)."""

LR_BOUNDS = (1e-6, 100.0)
"""Learning rate is clipped to this range after every move."""
WD_BOUNDS = (1e-7, 1e-1)
"""Weight decay is clipped to this range after every move."""
INSTANCE_SETS = ("train", "test", "sampled")
OPTIMIZERS = ("sgd", "adam")
NEURON_LOG_POLICIES = ("selective", "events", "summaries")
"""Neuron-log policies, each usable alone: flagged neurons, event-triggered records, per-layer summaries."""


def _check_choice(name: str, value: object, choices: tuple[object, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


@dataclass(frozen=True)
class TrainingEnvConfig:
    """Everything that defines a :class:`TrainingEnv`. Every field is JSON-able, so it can be a ``gym.make`` kwarg."""

    task: str = "digits_mlp"
    """Task family: digits_mlp, digits_cnn, mnist_cnn, tabular_mlp, reviews_bert, reviews_shortcut, a name
    registered with ``traingym.envs.register_task``, or ``"package.module:ClassName"`` (a TaskFamily subclass)."""
    instance_set: str = "train"
    """Which instances ``reset(seed=...)`` draws from: the fixed ``train`` set, the held-out ``test`` set, or
    ``sampled`` (a fresh instance from the family's distribution)."""
    steps_per_action: int = 50
    """K: optimizer steps run by one env step (1..10000)."""
    horizon: int = 20
    """T: env steps per episode; the env truncates itself after T steps and reports test accuracy then. Pass the
    same value as ``max_episode_steps`` to ``gym.make`` when changing it (the registered time limit is 20)."""
    optimizer: str = "sgd"
    """``sgd`` (with momentum) or ``adam`` (AdamW: decoupled weight decay)."""
    momentum: float = 0.9
    """SGD momentum in [0, 0.999]."""
    batch_size: int = 64
    """Training batch size (1..4096)."""
    val_size: int = 512
    """Size cap of the fixed validation buffer (16..100000)."""
    flag_top_k: int = 4
    """Flagged neurons per hidden layer: the top-k by |activation x gradient| on validation errors (1..64)."""
    max_error_samples: int = 256
    """Cap on the validation errors used for neuron importance (1..100000)."""
    history_len: int = 8
    """Steps of train/val history kept for slopes and the advisor's report (2..64)."""
    obs_keys: tuple[str, ...] = OBS_KEYS
    """Observation keys to emit, a non-empty subset of ("training_stats", "neurons", "diagnosis")."""
    divergence_penalty: float = 1.0
    """Reward on divergence is ``-divergence_penalty`` (0..10); the episode terminates."""
    max_weight_norm: float = 1e4
    """Weights whose global L2 norm exceeds this count as diverged (1..1e12)."""
    max_loss: float = 100.0
    """A mean training loss above this (cross-entropy; chance is ~2.3 for 10 classes) counts as diverged (1..1e12)."""
    num_threads: int | None = 1
    """torch intra-op threads while the env resets and steps (the caller's count is restored after; None leaves
    it as it is)."""
    device: str = "cpu"
    """Torch device of the target network: ``cpu`` or ``cuda``/``cuda:N``."""
    advisor_device: str = "cpu"
    """Torch device of the diagnosis's local language models (the MiniLM encoder, ``smollm`` / ``hf:`` advisors):
    ``cpu`` or ``cuda``/``cuda:N``."""
    advisor: str = "heuristic"
    """Advisor spec: heuristic, smollm, hf:<path>, openai:<model> or module.path:ClassName."""
    advisor_call: str = "on_event"
    """When the advisor is called: every_step, every_n or on_event (reuse the last diagnosis otherwise)."""
    advisor_every_n: int = 5
    """Call period for ``advisor_call="every_n"`` (1..1000)."""
    advisor_base_url: str | None = None
    """Base URL of an OpenAI-compatible server for ``openai:`` advisors (the key comes from an env variable)."""
    advisor_timeout_s: float = 20.0
    """Per-request timeout of ``openai:`` advisors, in seconds (0.01..600); on timeout the heuristic answers."""
    advisor_max_retries: int = 2
    """Retries of ``openai:`` advisors after HTTP 429 / 5xx / connection errors (0..10)."""
    advisor_accounting: bool = False
    """Also put the advisor's latency, cache hits and token counters in ``info["advisor"]`` (wall-clock values
    differ between identical runs, so they are left out by default to keep ``info`` reproducible)."""
    encoder: str = "minilm"
    """Diagnosis text encoder: ``minilm`` (the offline MiniLM sentence encoder) or ``hashing`` (cheap, for tests)."""
    diagnosis_dim: int | None = None
    """Reduce the encoded text to this dimension with a fixed seeded projection (None keeps 384)."""
    neuron_log: tuple[str, ...] = NEURON_LOG_POLICIES
    """Neuron-log policies to run, a subset of ("selective", "events", "summaries"); () turns logging off."""
    log_path: str | None = None
    """Append the neuron event log as JSON Lines to this file (None: memory only)."""
    event_log_capacity: int = 256
    """Ring-buffer size of the in-memory event log (1..100000)."""
    relevance: bool = True
    """After each step, relevance on the errors: text tasks token relevance on the diagnostic buffer (held-out
    training data, :mod:`traingym.envs.monitoring.token_monitor`), image and table tasks input relevance on the
    validation buffer (:mod:`traingym.envs.monitoring.input_relevance`). It flags over-relevant tokens / input
    features for the report, events, the ``"neurons"`` block and augmentation. Off: nothing flagged, the relevance
    features stay zero."""
    mask_grid: int = 0
    """Who picks the inputs a step decorrelates from the label. 0: the env, the flagged ones first, at augmentation
    level 1 and up (see ``relevance``). G >= 1 (image tasks, height and width multiples of G): the agent, one cell
    of a G x G grid over the image per step, as a fifth action entry in 0..G^2 (0 none, c the c-th cell,
    row-major); augmentation is then the family's own at the knob's level, and the ``"neurons"`` block ends with
    2 G^2 per-cell relevance features (:mod:`traingym.envs.monitoring.input_relevance`)."""
    shortcut_p_pos: float = 0.9
    """reviews_shortcut: probability of the planted token in positive training reviews."""
    shortcut_p_neg: float = 0.05
    """reviews_shortcut: probability of the planted token in negative training reviews."""

    def __post_init__(self) -> None:
        from traingym.envs.tasks.registry import ACCEPTED_TASKS, is_task_spec

        if not is_task_spec(self.task):
            raise ValueError(f"task must be {ACCEPTED_TASKS}, got {self.task!r}")
        _check_choice("instance_set", self.instance_set, INSTANCE_SETS)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("advisor_call", self.advisor_call, choice_values(CallPolicy))
        _check_choice("encoder", self.encoder, choice_values(EncoderName))
        for name, low, high in (("steps_per_action", 1, 10_000), ("horizon", 1, 10_000), ("batch_size", 1, 4096),
                                ("val_size", 16, 100_000), ("flag_top_k", 1, 64), ("max_error_samples", 1, 100_000),
                                ("history_len", 2, 64), ("advisor_every_n", 1, 1000),
                                ("event_log_capacity", 1, 100_000), ("advisor_max_retries", 0, 10),
                                ("mask_grid", 0, 64)):
            check_range(name, getattr(self, name), low, high, integer=True)
        check_range("momentum", self.momentum, 0.0, 0.999)
        check_range("divergence_penalty", self.divergence_penalty, 0.0, 10.0)
        check_range("max_weight_norm", self.max_weight_norm, 1.0, 1e12)
        check_range("max_loss", self.max_loss, 1.0, 1e12)
        check_range("shortcut_p_pos", self.shortcut_p_pos, 0.0, 1.0)
        check_range("shortcut_p_neg", self.shortcut_p_neg, 0.0, 1.0)
        check_range("advisor_timeout_s", self.advisor_timeout_s, 0.01, 600.0)
        for name, low, high in (("num_threads", 1, 256), ("diagnosis_dim", 1, 384)):
            if getattr(self, name) is not None:
                check_range(name, getattr(self, name), low, high, integer=True)
        for name in ("advisor_accounting", "relevance"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.advisor_base_url is not None and not isinstance(self.advisor_base_url, str):
            raise ValueError(f"advisor_base_url must be None or a URL string, got {self.advisor_base_url!r}")
        if self.log_path is not None and not isinstance(self.log_path, (str, os.PathLike)):
            raise ValueError(f"log_path must be None or a file path, got {self.log_path!r}")
        check_device("device", self.device)
        check_device("advisor_device", self.advisor_device)
        for name in ("obs_keys", "neuron_log"):
            if isinstance(getattr(self, name), str):  # a bare string would be split into characters
                raise ValueError(f"{name} must be a list of names, got the string {getattr(self, name)!r}; "
                                 f"write [{getattr(self, name)!r}]")
        keys = tuple(self.obs_keys)
        if not keys or len(set(keys)) != len(keys) or any(k not in OBS_KEYS for k in keys):
            raise ValueError(f"obs_keys must be a non-empty subset of {OBS_KEYS} without repeats, got {keys!r}")
        policies = tuple(self.neuron_log)
        if any(p not in NEURON_LOG_POLICIES for p in policies) or len(set(policies)) != len(policies):
            raise ValueError(f"neuron_log must be a subset of {NEURON_LOG_POLICIES} without repeats, got {policies!r}")
        object.__setattr__(self, "neuron_log", tuple(p for p in NEURON_LOG_POLICIES if p in policies))
        # Keep a canonical order so spaces are identical whatever order the user listed the keys in.
        object.__setattr__(self, "obs_keys", tuple(k for k in OBS_KEYS if k in keys))


def field_names() -> list[str]:
    return [f.name for f in fields(TrainingEnvConfig)]
