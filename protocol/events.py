"""Training event types: what the env's event log records and what a TrainingReport's ``events`` block names.

The string value of an :class:`EventType` is what records and reports carry. :data:`DECISION_EVENTS` are the
types that can change an advisor's diagnosis; it is derived from the enum, so a new type is never missed by
spelling.
"""

from __future__ import annotations

from enum import Enum


class EventType(str, Enum):
    """What happened. The string value is what records and reports carry."""

    NEW_MISCLASSIFICATIONS = "new_misclassifications"
    """Validation examples that were classified correctly at the previous step are wrong now (values:
    ``count``, ``fraction``); ``layer`` / ``neuron_ids`` name the units with the largest error share, if
    known."""
    LOSS_SPIKE = "loss_spike"
    """A training or validation loss rose sharply against its recent history (values: ``loss``, ``ratio`` to
    the running mean)."""
    GAP_JUMP = "gap_jump"
    """The generalisation gap (val_loss - train_loss, or train_acc - val_acc) grew by more than a threshold in
    one step (values: ``gap``, ``delta``)."""
    DEAD_UNIT_GROWTH = "dead_unit_growth"
    """The fraction of never-active units in ``layer`` grew (values: ``dead_fraction``, ``delta``;
    ``neuron_ids``: units that died this step)."""
    DIVERGENCE = "divergence"
    """A loss or weight became non-finite or exceeded the divergence bound; the env ends the episode (values:
    ``loss``)."""
    OVER_RELEVANT_TOKEN = "over_relevant_token"
    """Text tasks: a token's relevance share on validation errors is an outlier (z-score above threshold)
    across tokens; ``layer`` is None and ``neuron_ids`` holds the compact vocabulary token id (values: ``z``,
    ``share``, ``count``)."""

    OVER_RELEVANT_INPUT = "over_relevant_input"
    """Image and table tasks: an input feature's share of the gradient x input relevance on validation errors is
    an outlier (robust z-score above threshold) across features; ``layer`` is None and ``neuron_ids`` holds the
    flat feature index (values: ``z``, ``share``)."""


EVENT_TYPES: tuple[EventType, ...] = tuple(EventType)
"""Event types in a fixed order (the order of :meth:`EventLog.count_vector`)."""

DECISION_EVENTS: frozenset[EventType] = frozenset(EventType) - {EventType.NEW_MISCLASSIFICATIONS}
"""Event types that can change a diagnosis. ``new_misclassifications`` fires nearly every step and is left out of
the decision key and the event signature. Being ``str`` enum members, they match the plain strings of a report."""
