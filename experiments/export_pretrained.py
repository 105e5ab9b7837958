"""Ship a finished run's agent with the package: ``pretrained:<name>`` (see :mod:`traingym.agents.pretrained`).

::

    python -m traingym.experiments.export_pretrained --run-dir runs/<run> --name digits-mlp
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

from traingym.agents import pretrained
from traingym.agents.checkpoints import normalizer_path


def export_pretrained(run_dir: Path, name: str, card: str = "") -> Path:
    """Copy a finished run's final agent (``config.json``, ``model.zip``, VecNormalize statistics) and a card into
    ``agents/pretrained/<name>/``; the card is the run's ``eval.csv`` table unless given."""
    model = run_dir / "model.zip"
    if not model.exists():
        raise FileNotFoundError(f"{model} does not exist: export a finished run")
    made = provenance(run_dir)  # before copying: the copies would make the checkout look dirty
    out = pretrained.PRETRAINED_DIR / name
    out.mkdir(parents=True, exist_ok=True)
    for path in (run_dir / "config.json", model, normalizer_path(model)):
        if path.exists():
            shutil.copy2(path, out / path.name)
    if not card and (run_dir / "eval.csv").exists():
        card = f"Held-out evaluation of the run (`eval.csv`):\n\n```\n{(run_dir / 'eval.csv').read_text()}```"
    (out / "card.md").write_text(f"# pretrained:{name}\n\n{made}\n\n{card}\n")
    return out


def provenance(run_dir: Path) -> str:
    """How the run was made: its ``train_agent.py`` command, creation time, and the exporting checkout."""
    import json

    from traingym.agents.args import Args
    from traingym.experiments.study import train_command
    from traingym.protocol.provenance import git_commit, machine_description

    config = json.loads((run_dir / "config.json").read_text())
    return (f"- command: `{train_command(Args.from_json(config['args']))}` (run created {config.get('created')})\n"
            f"- exported at commit {git_commit()} on {machine_description()}")


@dataclasses.dataclass(frozen=True)
class ExportArgs:
    """Ship a finished run's agent with the package as ``pretrained:<name>``."""

    run_dir: str
    """The finished run directory (holds config.json and model.zip)."""
    name: str = "digits-mlp"
    """The name users load it by: ``pretrained:<name>``."""
    card: str = ""
    """Markdown for the card below the provenance (which run of which study, where it is evaluated); empty: the
    run's ``eval.csv`` table."""


def main(argv: list[str] | None = None) -> int:
    from traingym.protocol.cli import parse_cli

    args = parse_cli(ExportArgs, argv, "python -m traingym.experiments.export_pretrained")
    print(export_pretrained(Path(args.run_dir), args.name, args.card))
    return 0


if __name__ == "__main__":
    sys.exit(main())
