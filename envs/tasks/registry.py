"""Lookup of task families by the name used in :attr:`TrainingEnvConfig.task`."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from traingym.envs.tasks.base import TaskFamily

if TYPE_CHECKING:
    from traingym.envs.config import TrainingEnvConfig


@functools.cache
def task_families() -> dict[str, type[TaskFamily]]:
    from traingym.envs.tasks import TASK_FAMILIES

    return dict(TASK_FAMILIES)


def task_names() -> tuple[str, ...]:
    return tuple(task_families())


def make_task(name: str, config: TrainingEnvConfig | None = None) -> TaskFamily:
    """A new family object; with ``config``, configured as an env with that config uses it (e.g. the shortcut
    rates of ``reviews_shortcut``), else with the family's defaults."""
    families = task_families()
    if name not in families:
        raise ValueError(f"task must be one of {tuple(families)}, got {name!r}")
    family = families[name]
    return family.from_config(config) if config is not None else family()
