"""Lookup of task families by the name used in :attr:`TrainingEnvConfig.task`: the built-in families, families
registered with :func:`register_task`, and ``"package.module:ClassName"`` specs (imported on first use).

A family that is not built in is checked against the task contract (:mod:`traingym.envs.tasks.contract`) the
first time an env builds it, so a broken family fails at construction with one message naming the rule.
``register_task`` registers in the current process only; worker processes (``SubprocVecEnv``) see a family by
its ``module:Class`` spec.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from traingym.envs.tasks.base import TaskFamily
from traingym.protocol.user_class import is_user_class_spec, resolve_user_class

if TYPE_CHECKING:
    from traingym.envs.config import TrainingEnvConfig

_USER_FAMILIES: dict[str, type[TaskFamily]] = {}
_CHECKED: set[tuple[type[TaskFamily], int]] = set()
ACCEPTED_TASKS = ('a built-in family name, a name registered with traingym.envs.register_task(name, cls), or '
                  '"package.module:ClassName" (a TaskFamily subclass)')


@functools.cache
def _builtin_families() -> dict[str, type[TaskFamily]]:
    from traingym.envs.tasks import TASK_FAMILIES

    return dict(TASK_FAMILIES)


def task_families() -> dict[str, type[TaskFamily]]:
    """Built-in and registered families by name."""
    return {**_builtin_families(), **_USER_FAMILIES}


def task_names() -> tuple[str, ...]:
    return tuple(task_families())


def is_task_spec(name: object) -> bool:
    """Whether ``name`` names a family: a known name or the ``module:Class`` form (resolved later)."""
    return isinstance(name, str) and (name in task_families() or is_user_class_spec(name))


def register_task(name: str, family: type[TaskFamily]) -> None:
    """Make ``family`` available as ``gym.make("TrainGym/Custom-v0", task=name)`` in this process.

    Raises:
        ValueError: a name that is not an identifier, a built-in name, or a class that is not a TaskFamily.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"task name must be an identifier such as 'my_task', got {name!r}")
    if name in _builtin_families():
        raise ValueError(f"task name {name!r} is a built-in family; choose another name")
    if not (isinstance(family, type) and issubclass(family, TaskFamily)):
        raise ValueError(f"register_task needs a TaskFamily subclass, got {family!r}")
    _USER_FAMILIES[name] = family


def resolve_family(name: str) -> type[TaskFamily]:
    """The family class a name or ``module:Class`` spec stands for."""
    families = task_families()
    if name in families:
        return families[name]
    if isinstance(name, str) and is_user_class_spec(name):
        family = resolve_user_class(name, "task family", ACCEPTED_TASKS)
        if not issubclass(family, TaskFamily):
            raise ValueError(f"task {name!r} breaks the task contract rule 'a family subclasses "
                             f"traingym.envs.tasks.TaskFamily' (got a {family.__mro__[1].__name__} subclass)")
        return family
    raise ValueError(f"task must be one of {tuple(families)} or a 'package.module:ClassName' spec, got {name!r}")


def check_task_spec(spec: str) -> None:
    """Check a family given on a command line before anything trains: the ``module:Class`` form (the one every
    worker process can import), importable, a TaskFamily that keeps the task contract.

    Raises:
        ValueError: one message naming what is wrong (TaskContractError for a broken rule).
    """
    if not (isinstance(spec, str) and is_user_class_spec(spec)) and spec not in _builtin_families():
        raise ValueError(f"task must be 'package.module:ClassName' (importable in every worker process: put its "
                         f"folder on PYTHONPATH) or a built-in family {tuple(_builtin_families())}, got {spec!r}; "
                         "a name given to register_task exists only in the process that registered it")
    make_task(spec)


def make_task(name: str, config: TrainingEnvConfig | None = None) -> TaskFamily:
    """A new family object; with ``config``, configured as an env with that config uses it (e.g. the shortcut
    rates of ``reviews_shortcut``), else with the family's defaults. Families that are not built in are checked
    against the task contract once per process."""
    family = resolve_family(name)
    task = family.from_config(config) if config is not None else family()
    if family not in _builtin_families().values():
        val_size = config.val_size if config is not None else 512
        if (family, val_size) not in _CHECKED:
            from traingym.envs.tasks.contract import check_task_family

            check_task_family(task, val_size)
            _CHECKED.add((family, val_size))
    return task
