"""Lookup of task families by the name used in :attr:`TrainingEnvConfig.task`."""

from __future__ import annotations

import functools

from traingym.envs.tasks.base import TaskFamily


@functools.cache
def task_families() -> dict[str, type[TaskFamily]]:
    from traingym.envs.tasks import TASK_FAMILIES

    return dict(TASK_FAMILIES)


def task_names() -> tuple[str, ...]:
    return tuple(task_families())


def make_task(name: str) -> TaskFamily:
    families = task_families()
    if name not in families:
        raise ValueError(f"task must be one of {tuple(families)}, got {name!r}")
    return families[name]()
