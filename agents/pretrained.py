"""Agents shipped with the package, loadable by name: ``load_agent("pretrained:digits-mlp")``.

Each agent is a run directory's essentials copied into ``agents/pretrained/<name>/`` by :func:`export_pretrained`:
``config.json`` (the run's arguments, env kwargs and algorithm settings), ``model.zip``, its VecNormalize
statistics and ``card.md`` (the command, commit and held-out table that produced it). The same
``pretrained:<name>`` string works wherever a CLI takes a run directory (``python -m traingym.agents.evaluate
--policies pretrained:digits-mlp keep``). The files are SB3 zips and a VecNormalize pickle: load only agents of
this package or your own runs.

Export (after a run)::

    python -m traingym.agents.pretrained --run-dir runs/<run> --name digits-mlp
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

from traingym.agents.checkpoints import normalizer_path

PREFIX = "pretrained:"
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


def pretrained_names() -> list[str]:
    """Names of the shipped agents."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / "model.zip").exists())


def resolve_agent_path(target: str | Path) -> Path:
    """``pretrained:<name>`` -> the shipped agent's directory; any other path is returned as it is.

    Raises:
        ValueError: an unknown pretrained name (the message lists the shipped ones).
    """
    text = str(target)
    if not text.startswith(PREFIX):
        return Path(target)
    name = text[len(PREFIX):]
    if name not in pretrained_names():
        raise ValueError(f"no pretrained agent {name!r}; shipped: {', '.join(pretrained_names()) or 'none'}")
    return PRETRAINED_DIR / name


def shipped_agent_for(env_id: str) -> str | None:
    """``pretrained:<name>`` of a shipped agent trained on ``env_id`` (the first by name), None when none is."""
    import json

    for name in pretrained_names():
        config = json.loads((PRETRAINED_DIR / name / "config.json").read_text())
        if config.get("args", {}).get("env") == env_id:
            return PREFIX + name
    return None


def export_pretrained(run_dir: Path, name: str, card: str = "") -> Path:
    """Copy a finished run's final agent (``config.json``, ``model.zip``, VecNormalize statistics) and a card into
    ``agents/pretrained/<name>/``; the card is the run's ``eval.csv`` table unless given."""
    model = run_dir / "model.zip"
    if not model.exists():
        raise FileNotFoundError(f"{model} does not exist: export a finished run")
    made = provenance(run_dir)  # before copying: the copies would make the checkout look dirty
    out = PRETRAINED_DIR / name
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
    from traingym.agents.results import git_commit, machine_description
    from traingym.agents.study import train_command

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


def main(argv: list[str] | None = None) -> int:
    from traingym.agents.cli_args import parse_cli

    args = parse_cli(ExportArgs, argv, "python -m traingym.agents.pretrained")
    print(export_pretrained(Path(args.run_dir), args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
