"""Timing helpers shared by the benchmark figures: phase stopwatches, robust statistics, machine facts."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class PhaseClock:
    """Accumulates wall-clock seconds per phase label; :meth:`wrap` times a callable under a label.

    Nested phases are inclusive (an outer phase's time contains its inner phases); callers subtract.
    """

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)

    def wrap(self, label: str, fn: Callable[..., T]) -> Callable[..., T]:
        def timed(*args: Any, **kwargs: Any) -> T:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started

        return timed

    def take(self) -> dict[str, float]:
        """The accumulated seconds per label, then start from zero."""
        out = dict(self.seconds)
        self.seconds.clear()
        return out


def median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def quartiles(values: Sequence[float]) -> tuple[float | None, float | None]:
    """(25th, 75th) percentiles, or (None, None) for fewer than two values."""
    if len(values) < 2:
        return None, None
    q = statistics.quantiles(values, n=4, method="inclusive")
    return float(q[0]), float(q[2])


def rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def machine_info() -> dict[str, Any]:
    """Facts that explain the absolute numbers: cores, load, library versions, torch threads."""
    import gymnasium
    import stable_baselines3
    import torch

    autogroup = _read_first("/proc/sys/kernel/sched_autogroup_enabled")
    return {
        "cpu_count": os.cpu_count(),
        "loadavg": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gymnasium": gymnasium.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        # Linux: with autogroup scheduling every session gets an equal CPU share however many processes it runs,
        # so on a machine shared with busy sessions a 2-process vector env cannot get 2 cores.
        "sched_autogroup": None if autogroup is None else autogroup == "1",
        "cpu_pressure": _read_first("/proc/pressure/cpu"),
    }


def _read_first(path: str) -> str | None:
    """First line of a small system file, or None where it does not exist."""
    try:
        with open(path) as file:
            return file.readline().strip()
    except OSError:
        return None
