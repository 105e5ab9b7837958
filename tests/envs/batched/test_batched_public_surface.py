"""The batched envs (and the benchmarks) step their sub-envs through ``TrainingEnv``'s public step phases only: no
module of ``envs/batched/`` or ``benchmarks/`` touches another object's private member (``obj._name``), so the
batched env cannot come to depend on the single env's private state and drift from it unnoticed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCANNED = ("envs/batched", "benchmarks")
ALLOWED: dict[tuple[str, str], str] = {
    ("envs/batched/shards.py", "vec._seeds"): "SB3's VecEnv takes per-sub-env seeds for the next reset only here",
    ("envs/batched/shards.py", "vec._options"): "set with the seeds, as SB3's own subprocess workers do",
}
"""``(file, expression)`` -> why that private access stays (none of them is a ``TrainingEnv`` member)."""


def private_accesses(source: str) -> list[tuple[int, str]]:
    """``(line, expression)`` of each ``obj._name`` (one leading underscore) in ``source`` whose ``obj`` is not
    ``self``, ``cls`` or ``super()`` (an object's own members and its base class's) and not under ``torch`` (whose
    ``_foreach`` kernels are its multi-tensor API)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
            continue
        root = owner
        while isinstance(root, ast.Attribute):
            root = root.value
        if isinstance(root, ast.Name) and root.id == "torch":
            continue
        found.append((node.lineno, ast.unparse(node)))
    return sorted(found)


def test_the_scan_finds_what_it_should() -> None:
    source = ("env._model\nenv.model\nself._groups\nself.envs[i]._begin_step(a)\nenvs[i]._lr\nsuper()._validate()\n"
              "torch._foreach_norm(p)\ntorch.ops.aten._x\nenv.__class__\n[e._aug_gen for e in envs]\n")
    assert private_accesses(source) == [(1, "env._model"), (4, "self.envs[i]._begin_step"), (5, "envs[i]._lr"),
                                        (10, "e._aug_gen")]


@pytest.mark.parametrize("path", [str(p.relative_to(ROOT)) for folder in SCANNED
                                  for p in sorted((ROOT / folder).glob("*.py"))])
def test_no_private_access_to_other_objects(path: str) -> None:
    found = [(line, expr) for line, expr in private_accesses((ROOT / path).read_text(encoding="utf-8"))
             if (path, expr) not in ALLOWED]
    assert not found, (f"{path} reaches into private members {found}: use TrainingEnv's public step phases and "
                       "properties (its docstring, 'Step phases'), or make what is needed public")


def test_every_allowance_is_still_needed() -> None:
    for path, expr in ALLOWED:
        assert expr in [e for _, e in private_accesses((ROOT / path).read_text(encoding="utf-8"))], (path, expr)
