"""The move vocabulary: actions over a subset of the knobs."""

from __future__ import annotations

import numpy as np
import pytest
from traingym.protocol.moves import expand_actions, knob_indices


def test_expand_actions_fills_the_other_knobs_with_keep() -> None:
    indices = knob_indices(("aug_level", "lr"))
    assert indices == (2, 0)
    assert expand_actions(np.array([0, 2]), indices).tolist() == [2, 1, 0, 1]
    assert expand_actions(np.array([[0, 2], [2, 1]]), indices).tolist() == [[2, 1, 0, 1], [1, 1, 2, 1]]
    with pytest.raises(ValueError, match="knobs must be distinct"):
        knob_indices(("lr", "lr"))
    with pytest.raises(ValueError, match="knobs must be distinct"):
        knob_indices(())
