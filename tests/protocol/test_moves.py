"""The move vocabulary: actions over a subset of the knobs."""

from __future__ import annotations

import numpy as np
import pytest
from traingym.protocol.moves import agent_columns, expand_actions, knob_indices


def test_expand_actions_fills_the_other_knobs_with_keep() -> None:
    indices = knob_indices(("aug_level", "lr"))
    assert indices == (2, 0)
    assert expand_actions(np.array([0, 2]), indices).tolist() == [2, 1, 0, 1]
    assert expand_actions(np.array([[0, 2], [2, 1]]), indices).tolist() == [[2, 1, 0, 1], [1, 1, 2, 1]]
    # Entries after the agent's knobs are the env's after the knobs (mask_grid's cell): they follow unchanged.
    assert expand_actions(np.array([0, 2, 9]), indices).tolist() == [2, 1, 0, 1, 9]
    assert agent_columns(indices, 5) == [2, 0, 4] and agent_columns(indices, 4) == [2, 0]
    full = np.array([2, 1, 0, 1, 9])
    assert expand_actions(full[agent_columns(indices, 5)], indices).tolist() == full.tolist()
    with pytest.raises(ValueError, match="knobs must be distinct"):
        knob_indices(("lr", "lr"))
    with pytest.raises(ValueError, match="knobs must be distinct"):
        knob_indices(())
