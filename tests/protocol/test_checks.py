"""The one range check."""

from __future__ import annotations

import math

import pytest
from traingym.protocol.checks import check_range


@pytest.mark.parametrize(("value", "integer"), [(1, True), (3, True), (1.0, False), (2.5, False), (3, False)])
def test_values_in_the_closed_interval_pass(value: float, integer: bool) -> None:
    check_range("x", value, 1, 3, integer=integer)


@pytest.mark.parametrize(("value", "integer", "message"), [
    (0, True, "x must be in [1, 3], got 0"),
    (4, True, "x must be in [1, 3], got 4"),
    (3.5, False, "x must be in [1, 3], got 3.5"),
    (math.nan, False, "x must be in [1, 3], got nan"),
    (2.0, True, "x must be an int in [1, 3], got 2.0"),
    (True, True, "x must be an int in [1, 3], got True"),
    (True, False, "x must be a number in [1, 3], got True"),
    ("2", False, "x must be a number in [1, 3], got '2'"),
])
def test_anything_else_is_one_message_naming_the_field_and_the_range(value: object, integer: bool,
                                                                     message: str) -> None:
    with pytest.raises(ValueError) as error:
        check_range("x", value, 1, 3, integer=integer)
    assert str(error.value) == message
