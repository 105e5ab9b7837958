"""The gradient benchmark compares equal work: its three paths train the stack to the same parameters."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.stacked_gradients import PATHS, Args, make_data, make_models, markdown  # noqa: E402


@pytest.mark.parametrize("widths", [(16,), (16, 16)])
def test_the_three_paths_train_the_same_parameters(widths: tuple[int, ...]) -> None:
    x, y = make_data(3, steps=5)
    trained = {}
    for name, build in PATHS.items():
        path = build(make_models(3, widths))
        path.train(x, y)
        trained[name] = [p.detach().clone() for p in path.parameters()]
    before = [p.detach().clone() for p in PATHS["autograd"](make_models(3, widths)).parameters()]
    assert any(not torch.allclose(a, b) for a, b in zip(trained["written_out"], before))  # it did train
    for name in ("torch_func", "autograd"):
        for a, b in zip(trained["written_out"], trained[name]):
            assert torch.allclose(a, b, atol=1e-5), name


def test_the_page_states_the_rule_and_bad_arguments_are_refused() -> None:
    rows = [{"n": 8, "seconds_per_env_step": {"written_out": 0.1, "torch_func": 0.3, "autograd": 0.15},
             "best_maintained": "autograd", "written_out_speedup": 1.5, "speedup_quartiles": [1.4, 1.6]}]
    text = markdown({"rows": rows, "widths": [64], "steps": 50, "rounds": 3, "keep_written_out": True})
    assert "| 8 | 0.1000 | 0.3000 | 0.1500 | 1.50 [1.40, 1.60] (autograd) |" in text and "keeps its place" in text
    with pytest.raises(ValueError, match="--sizes"):
        Args(sizes=(0,))
