"""The proposal/decision contract: edits a human types are parsed once, for the terminal and the web page."""

import pytest
from traingym.protocol.proposals import DecidedBy, Decision, MoveEditError, Proposal, parse_move_edit


def test_parse_move_edit_sets_named_knobs_and_keeps_the_rest():
    assert parse_move_edit("lr=+1, wd=0") == (1, 0, 0, 0)
    assert parse_move_edit("aug=-1 scale=1", base=(1, 1, 0, 0)) == (1, 1, -1, 1)
    assert parse_move_edit("weight_decay = -1") == (0, -1, 0, 0)


@pytest.mark.parametrize(("text", "message"), [
    ("foo=1", "unknown knob 'foo'"), ("lr=2", "out of range"), ("", "empty edit"), ("lr", "cannot read"),
    ("lr=0.5", "cannot read"),
])
def test_parse_move_edit_rejects_malformed_input_with_a_message(text, message):
    with pytest.raises(MoveEditError, match=message):
        parse_move_edit(text)


def test_proposal_and_decision_validate_moves():
    with pytest.raises(ValueError, match="proposed_move"):
        Proposal(step=0, report_hash="0" * 16, proposed_move=(2, 0, 0, 0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="action"):
        Decision((0, 0, 0, 0), DecidedBy.HUMAN, action="maybe")
    assert Decision((1, 0, 0, 0), DecidedBy.POLICY).action == "accept"
