"""``make run``'s main job is the study variant whose three seeds docs/results/agent_patch_pathologies.md reports."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from traingym.agents.cli import parse_args
from traingym.experiments.study import PRESET_VARIANTS, StudyArgs

ROOT = Path(__file__).resolve().parents[2]
VARIANT = "training_stats+neurons+diagnosis-kickstart-dagger-384"


def main_job_flags() -> list[str]:
    """The Makefile's ``MAIN_JOB`` flags (continuation lines joined)."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    match = re.search(r"^MAIN_JOB \?= (.+)$", text, re.M)
    assert match, "the Makefile defines MAIN_JOB"
    return shlex.split(match.group(1))


def test_make_run_trains_the_reported_variant() -> None:
    job = parse_args(main_job_flags())
    study = StudyArgs(preset="patch_pathologies").agent_args(VARIANT, seed=0)
    for field in ("env", *PRESET_VARIANTS["patch_pathologies"][VARIANT]):
        assert getattr(job, field) == getattr(study, field), field
    assert "run: setup\n\t$(BIN)/python train_agent.py $(MAIN_JOB)" in (ROOT / "Makefile").read_text()
