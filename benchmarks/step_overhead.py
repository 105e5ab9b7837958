"""Figure ``step_overhead``: TrainGym ``env.step`` time / a bare PyTorch loop doing the same training work.

Both run side by side in this process, interleaved step by step (the order alternates every step), on the same
task instance with the same moves (a seeded random policy). One repetition is a block of ``steps_per_rep`` env
steps; its ratio is the block's summed env time over the block's summed bare time, so rare costs (an encoder
cache miss) count at their real rate. The figure is the median ratio over the repetitions.
``ratio_encoder_cached`` is the same with the time of encoder cache misses taken out: the step overhead once
every diagnosis text seen is in the encoder's cache (the short benchmark starts from a cold cache).

The env is :class:`PhaseTimedEnv`, a subclass that only wraps the env's phases with ``time.perf_counter``
(a few microseconds per step), so the same run also yields the component breakdown: each component is its
time as a fraction of the bare step (median over repetitions; within one repetition the components add up
exactly to its ratio - 1):

- ``train_loop``: the env's K optimizer steps minus the bare loop's (metric accumulation, hooks, norms);
- ``validation``: the env's validation pass minus the bare loop's (activation statistics included);
- ``moves``: applying the move, neuron scaling included;
- ``neuron_log``: gradient/weight summaries, the error pass that flags neurons, the ``"neurons"`` vector;
- ``events``: event detection and the event log's end of step;
- ``observation``: the ``"training_stats"`` vector and the rest of the observation assembly;
- ``report``: building the TrainingReport for the advisor;
- ``advisor``: the diagnosis channel minus the encoder (normalisation, hashing, call policy, the advisor);
- ``encoder``: encoding the diagnosis text (cache hits and misses);
- ``relevance``: token relevance on text tasks (None where the env computes none);
- ``other``: the rest (step bookkeeping, info dicts; the test pass at episode end minus the bare one).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from traingym.envs.monitoring.neuron_log import ValidationPass
from traingym.envs.tasks.registry import task_names
from traingym.envs.training_env import TrainingEnv

from benchmarks.bare_loop import BareLoop
from benchmarks.timing import PhaseClock, median, quartiles, rounded

FAMILIES: tuple[str, ...] = ("digits_mlp", "digits_cnn", "mnist_cnn", "tabular_mlp", "reviews_bert")
"""Task families measured, in report order (a family that is not registered yet is reported with a reason)."""
COMPONENTS: tuple[str, ...] = ("train_loop", "validation", "moves", "neuron_log", "events", "observation",
                               "report", "advisor", "encoder", "relevance", "other")


class PhaseTimedEnv(TrainingEnv):
    """A :class:`TrainingEnv` whose phases are timed into :attr:`clock` (the env's code runs unchanged)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = PhaseClock()
        wrap = self.clock.wrap
        self._detector.detect = wrap("events_detect", self._detector.detect)  # type: ignore[method-assign]
        self._events.end_step = wrap("events_end", self._events.end_step)  # type: ignore[method-assign]
        if self._neuron_features is not None:
            self._neuron_features.vector = wrap("features", self._neuron_features.vector)  # type: ignore
        channel = self._diagnosis
        self.encoder_cache = None
        if channel is not None:
            channel.observe = wrap("channel", channel.observe)  # type: ignore[method-assign]
            encoder = getattr(channel, "_encoder", None)
            if encoder is not None and hasattr(encoder, "encode"):
                encoder.encode = wrap("encoder", encoder.encode)
                self.encoder_cache = encoder if hasattr(encoder, "cache_info") else None
                inner = getattr(encoder, "encoder", None)  # the model behind the cache: runs on misses only
                if inner is not None and hasattr(inner, "encode"):
                    inner.encode = wrap("encoder_miss", inner.encode)

    def reset(self, **kwargs: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        result = super().reset(**kwargs)
        log, wrap = self._log, self.clock.wrap
        assert log is not None
        log.record_training = wrap("log_training", log.record_training)  # type: ignore[method-assign]
        log.record_errors = wrap("log_errors", log.record_errors)  # type: ignore[method-assign]
        self.clock.take()  # reset's own phases are not part of a step
        return result

    def _apply_move(self, move: tuple[int, ...]) -> None:
        started = time.perf_counter()
        super()._apply_move(move)
        self.clock.seconds["moves"] += time.perf_counter() - started

    def train_steps(self) -> tuple[float, float, float]:
        started = time.perf_counter()
        try:
            return super().train_steps()
        finally:
            self.clock.seconds["train"] += time.perf_counter() - started

    def finish_training(self, mean_loss: float, accuracy: float, weight_norm: float) -> tuple[float, float, bool]:
        started = time.perf_counter()  # part of "train": the neuron log's training statistics ("log_training")
        try:
            return super().finish_training(mean_loss, accuracy, weight_norm)
        finally:
            self.clock.seconds["train"] += time.perf_counter() - started

    def _validate(self, computed: ValidationPass | None = None) -> tuple[float, float]:
        started = time.perf_counter()
        try:
            return super()._validate(computed)
        finally:
            self.clock.seconds["validate"] += time.perf_counter() - started

    def _observe(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        started = time.perf_counter()
        try:
            return super()._observe()
        finally:
            self.clock.seconds["observe"] += time.perf_counter() - started

    def _update_relevance(self) -> None:
        started = time.perf_counter()
        try:
            super()._update_relevance()  # type: ignore[misc]  # text tasks (absent in older envs)
        finally:
            self.clock.seconds["relevance"] += time.perf_counter() - started

    def report(self) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            return super().report()
        finally:
            self.clock.seconds["report"] += time.perf_counter() - started


def components(phases: dict[str, float], env_s: float, bare: BareLoop) -> dict[str, float]:
    """Seconds per component of one env step (see the module doc); they sum to ``env_s - bare total``."""
    p = phases.get
    out = {
        "train_loop": p("train", 0.0) - p("log_training", 0.0) - bare.train_s,
        "moves": p("moves", 0.0),
        "neuron_log": p("log_training", 0.0) + p("log_errors", 0.0) + p("features", 0.0),
        "events": p("events_detect", 0.0) + p("events_end", 0.0),
        "report": p("report", 0.0),
        "advisor": p("channel", 0.0) - p("encoder", 0.0),
        "encoder": p("encoder", 0.0),
        "relevance": p("relevance", 0.0),
    }
    # The detector runs inside the validation pass; the report is built inside the observation.
    out["validation"] = p("validate", 0.0) - p("log_errors", 0.0) - p("events_detect", 0.0) - bare.val_s
    out["observation"] = p("observe", 0.0) - p("features", 0.0) - p("report", 0.0) - p("channel", 0.0)
    bare_total = bare.train_s + bare.val_s + bare.test_s
    out["other"] = env_s - bare_total - sum(out.values())
    return out


class _Block:
    """Sums over the measured steps of one repetition."""

    def __init__(self) -> None:
        self.env_s = self.bare_s = self.miss_s = 0.0
        self.parts = dict.fromkeys(COMPONENTS, 0.0)
        self.steps = 0

    def add(self, env_s: float, phases: dict[str, float], bare: BareLoop) -> None:
        self.env_s += env_s
        self.bare_s += bare.train_s + bare.val_s + bare.test_s
        self.miss_s += phases.get("encoder_miss", 0.0)
        for name, seconds in components(phases, env_s, bare).items():
            self.parts[name] += seconds
        self.steps += 1


def measure_family(family: str, env_kwargs: dict[str, Any], *, reps: int, steps_per_rep: int,
                   warmup_steps: int, seed: int = 0, time_budget_s: float | None = None) -> dict[str, Any]:
    """The step-overhead figure of one task family (see the module doc for the method).

    Warm-up (untimed) lasts ``warmup_steps`` env steps or a third of ``time_budget_s``, whichever ends first;
    then repetitions run until ``reps`` are done or ``time_budget_s`` is spent (at least two repetitions). A
    family too slow for three repetitions of ``steps_per_rep`` steps in the budget gets shorter repetitions.
    """
    if family not in task_names():
        return {"ratio": None, "reason": f"task family {family!r} is not registered (envs/tasks/__init__.py)"}
    env = PhaseTimedEnv(task=family, **env_kwargs)
    task = env.task  # the family as the env configured it; the bare loop trains the same way
    rng = np.random.default_rng(seed)
    episodes = 0
    hparam_mismatches = 0

    def new_episode() -> tuple[BareLoop, int]:
        nonlocal episodes
        episodes += 1
        _, info = env.reset(seed=seed * 10_000 + episodes)
        return BareLoop(task, info["instance"], env.config, seed=seed * 10_000 + episodes), 0

    bare, t = new_episode()
    blocks: list[_Block] = []
    block = _Block()
    warming, warm_steps = True, 0
    started = time.perf_counter()
    lookups_before = _lookups(env)
    step_index = 0
    while len(blocks) < reps:
        elapsed = time.perf_counter() - started
        if warming and (warm_steps >= warmup_steps or (time_budget_s is not None and elapsed > time_budget_s / 3)):
            if time_budget_s is not None and warm_steps:  # slow families: shorter repetitions, at least 3 of them
                steps_per_rep = max(1, min(steps_per_rep, int(time_budget_s / (3 * elapsed / warm_steps))))
            warming, started, lookups_before = False, time.perf_counter(), _lookups(env)
        elif not warming and time_budget_s is not None and len(blocks) >= 2 and elapsed > time_budget_s:
            break
        action = rng.integers(0, 3, size=4)
        move = tuple(int(a) - 1 for a in action)
        last = t + 1 >= env.config.horizon
        env_first = step_index % 2 == 0  # alternate who goes first
        if not env_first:
            bare.step(move, last)
        env.clock.take()
        t0 = time.perf_counter()
        _, _, terminated, truncated, info = env.step(action)
        env_s = time.perf_counter() - t0
        phases = env.clock.take()
        if env_first:
            bare.step(move, last)
        step_index, t = step_index + 1, t + 1
        if (info["lr"], info["weight_decay"], info["aug_level"]) != (bare.lr, bare.wd, bare.aug):
            hparam_mismatches += 1
        if warming:
            warm_steps += 1
        elif not terminated:  # a diverged step skips validation: not comparable
            block.add(env_s, phases, bare)
            if block.steps == steps_per_rep:
                blocks.append(block)
                block = _Block()
        if terminated or truncated:
            bare, t = new_episode()
    hits, misses = (a - b for a, b in zip(_lookups(env), lookups_before))
    has_relevance = getattr(env, "_relevance", None) is not None  # text tasks with relevance=True
    env.close()
    ratios = [b.env_s / b.bare_s for b in blocks]
    p25, p75 = quartiles(ratios)
    return {
        "ratio": rounded(median(ratios)),
        "ratio_p25": rounded(p25),
        "ratio_p75": rounded(p75),
        "ratio_encoder_cached": rounded(median([(b.env_s - b.miss_s) / b.bare_s for b in blocks])),
        "env_ms": rounded(median([1000 * b.env_s / b.steps for b in blocks]), 3),
        "bare_ms": rounded(median([1000 * b.bare_s / b.steps for b in blocks]), 3),
        "reps": len(blocks),
        "steps_per_rep": steps_per_rep,
        "warmup_steps": warm_steps,
        "components": {name: (rounded(median([b.parts[name] / b.bare_s for b in blocks]))
                              if name != "relevance" or has_relevance else None) for name in COMPONENTS},
        "encoder_hit_rate": rounded(hits / (hits + misses)) if hits + misses else None,
        "obs_keys": list(env.config.obs_keys),
        "hparams_match": hparam_mismatches == 0,
        "reason": None,
    }


def _lookups(env: PhaseTimedEnv) -> tuple[int, int]:
    """(hits, misses) of the env's encoder cache so far, (0, 0) without one."""
    if env.encoder_cache is None:
        return 0, 0
    info = env.encoder_cache.cache_info()
    return int(info.hits), int(info.misses)
