"""The HPO comparison's results page: table, notes, per-pathology breakdown, and a recorded command that reproduces
the comparison."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from traingym.experiments.hpo_comparison import PROG, HPOPageArgs, page_name, write_page
from traingym.hpo.compare import run_comparison
from traingym.protocol.cli import parse_cli


def test_page_of_a_pathology_mixture(fast_kwargs: dict, tmp_path: Path) -> None:
    args = HPOPageArgs(env_id="TrainGym/DigitsPathologies-v0", n_instances=6, budgets=(1,), horizon=2,
                       steps_per_action=fast_kwargs["steps_per_action"], val_size=128, methods=("keep",),
                       policies=("steer", "good_defaults"), n_bootstrap=200, out_dir=str(tmp_path / "rows"),
                       write=True)
    result = run_comparison(args, log=lambda line: None)
    path = write_page(result, args, out_dir=tmp_path)
    assert path == tmp_path / "hpo_digits_pathologies.md" and page_name(args.env_id) == "hpo_digits_pathologies"
    page = path.read_text()
    assert "| method | n | optimizer steps / instance | test acc [95% CI] | Δ vs keep [95% CI] | Δ vs steer" in page
    assert [line.split(" | ")[0] for line in page.splitlines() if line.startswith("| ")][1:4] == [
        "| keep", "| steer", "| good_defaults"]
    assert "## By planted pathology" in page and "Instances per pathology:" in page
    stored = json.loads((tmp_path / "hpo_digits_pathologies.json").read_text())
    assert {"command", "commit", "date", "machine"} <= set(stored)
    assert stored["data"]["table"] == result.table and len(stored["data"]["rows"]) == 3 * 6
    command = stored["command"]
    assert command.startswith(PROG) and command.endswith("--write") and f"- command: `{command}`" in page
    assert parse_cli(HPOPageArgs, shlex.split(command)[len(PROG.split()):], PROG) == args  # reproduces the run
