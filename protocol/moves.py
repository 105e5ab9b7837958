"""The move vocabulary shared by the environment, the advisors, the baselines and HPO.

A move nudges each knob down, keeps it, or nudges it up. The env's ``MultiDiscrete([3, 3, 3, 3])`` action is the
move shifted by one (0 = decrease, 1 = keep, 2 = increase), in the order of :data:`KNOBS`; an env with
``mask_grid`` appends one entry, the grid cell it decorrelates (0 none), which is not part of the move.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

KNOBS: tuple[str, ...] = ("lr", "weight_decay", "aug_level", "neuron_scale")
"""Knob names, in action order."""

Move = tuple[int, int, int, int]
"""One entry per knob in {-1, 0, +1}."""

KEEP: Move = (0, 0, 0, 0)

LR_FACTOR = 2.0
"""Learning rate is multiplied by this on +1 and divided by it on -1."""
WD_FACTOR = 3.0
"""Weight decay is multiplied by this on +1 and divided by it on -1."""
SCALE_DOWN, SCALE_UP = 0.8, 1.25
"""Factors applied to the incoming weights of the flagged neurons on -1 / +1."""
AUG_LEVELS = 5
"""Augmentation levels 0..4."""


def action_to_move(action: Sequence[int] | np.ndarray) -> Move:
    """Map an env action (values in {0,1,2}) to a move (values in {-1,0,1})."""
    raw = np.asarray(action)
    arr = raw.reshape(-1)
    if arr.shape != (len(KNOBS),) or max(raw.shape, default=0) != len(KNOBS):  # (4,), (1, 4) or (4, 1) only
        raise ValueError(f"action must have {len(KNOBS)} entries (one per knob {KNOBS}), got shape {raw.shape}")
    if arr.dtype.kind not in "biuf":  # strings, objects: no silent coercion
        raise ValueError(f"action entries must be integers in {{0, 1, 2}}, got dtype {arr.dtype} ({arr.tolist()})")
    if not np.all((arr >= 0) & (arr <= 2) & (arr == np.round(arr))):  # 0.5 must not truncate to 0
        raise ValueError(f"action entries must be in {{0, 1, 2}}, got {arr.tolist()}")
    return tuple(int(a) - 1 for a in arr)  # type: ignore[return-value]


def move_to_action(move: Sequence[int]) -> np.ndarray:
    """Map a move (values in {-1,0,1}) to an env action (int64 values in {0,1,2})."""
    arr = np.asarray(move, dtype=np.int64).reshape(-1)
    if arr.shape != (len(KNOBS),) or not np.all(np.abs(arr) <= 1):
        raise ValueError(f"move must be {len(KNOBS)} ints in {{-1, 0, 1}} for knobs {KNOBS}, got {list(move)}")
    return arr + 1


def clip_move(move: Sequence[object]) -> Move:
    """Coerce an untrusted move (e.g. parsed from an LLM answer) into the vocabulary: sign of each number, 0 else."""
    out: list[int] = []
    for i in range(len(KNOBS)):
        value = move[i] if i < len(move) else 0
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            number = 0.0
        out.append(0 if not np.isfinite(number) else int(np.sign(number)))
    return tuple(out)  # type: ignore[return-value]


KEEP_ACTION: np.ndarray = move_to_action(KEEP)
"""The env action that changes nothing, ``[1, 1, 1, 1]`` (copy it before modifying it)."""


def keep_action(action_space: Any) -> np.ndarray:
    """The action of ``action_space`` (an env's ``MultiDiscrete``) that changes nothing: every knob kept, and 0
    (no cell) for each entry after the knobs (``mask_grid``)."""
    extra = len(np.asarray(action_space.nvec)) - len(KNOBS)
    return np.concatenate([KEEP_ACTION, np.zeros(extra, dtype=np.int64)])


def knob_indices(knobs: Sequence[str]) -> tuple[int, ...]:
    """Positions in :data:`KNOBS` of ``knobs`` (distinct knob names, any order).

    Raises:
        ValueError: naming the allowed knobs.
    """
    if not knobs or len(set(knobs)) != len(knobs) or any(k not in KNOBS for k in knobs):
        raise ValueError(f"knobs must be distinct names from {KNOBS} (at least one), got {list(knobs)}")
    return tuple(KNOBS.index(k) for k in knobs)


def expand_actions(actions: np.ndarray, indices: Sequence[int]) -> np.ndarray:
    """Full env actions from actions over a subset of the knobs: column ``j < len(indices)`` of ``actions`` (shape
    ``(n, columns)`` or ``(columns,)``) moves knob ``indices[j]``; every other knob keeps (1); columns after the
    knobs' are the env's entries after the knobs (``mask_grid``'s cell) and follow unchanged."""
    partial = np.asarray(actions, dtype=np.int64)
    full = np.tile(KEEP_ACTION, partial.shape[:-1] + (1,))
    full[..., list(indices)] = partial[..., :len(indices)]
    return np.concatenate([full, partial[..., len(indices):]], axis=-1)


def agent_columns(indices: Sequence[int], width: int) -> list[int]:
    """The columns of a full env action of ``width`` entries that an agent over the knobs at ``indices`` chooses:
    those knobs, then every entry after the knobs (:func:`expand_actions`'s inverse)."""
    return [*indices, *range(len(KNOBS), width)]
