"""The region-masking measurement: a run per arm on a real instance, and its arguments."""

from __future__ import annotations

import pytest
from traingym.agents.tuned_defaults import tuned_defaults
from traingym.envs.config import TrainingEnvConfig
from traingym.envs.tasks.pathologies import DigitsPatchPathologies
from traingym.experiments.region_masking import ENV_ID, Args, main, train_once


def test_the_right_cell_recovers_what_the_patch_costs_and_the_wrong_one_does_not() -> None:
    config = TrainingEnvConfig(task="digits_patch_pathologies", horizon=8)
    instance = dict(DigitsPatchPathologies().instance_set("train", config.optimizer)[0])
    accuracy = {arm: train_once(instance, 1.0, arm, config, tuned_defaults(ENV_ID))
                for arm in ("clean", "no remedy", "right cell", "wrong cell")}
    assert accuracy["no remedy"] < accuracy["clean"] - 0.3
    assert accuracy["right cell"] > accuracy["no remedy"] + 0.3
    assert accuracy["wrong cell"] < accuracy["right cell"] - 0.3


@pytest.mark.parametrize("argv, field", [(["--instances", "1"], "instances"), (["--strengths", "1.5"], "strengths")])
def test_bad_arguments_name_the_field(argv: list[str], field: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(argv)
    assert field in capsys.readouterr().err
    with pytest.raises(ValueError, match=field):
        Args(**{field: 1 if field == "instances" else (1.5,)})
