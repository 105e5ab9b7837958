"""Agents shipped with the package, loadable by name: ``load_agent("pretrained:digits-mlp")``.

Each agent is a run directory's essentials copied into ``agents/pretrained/<name>/`` by
:func:`traingym.experiments.export_pretrained.export_pretrained`: ``config.json`` (the run's arguments, env
kwargs and algorithm settings), ``model.zip``, its VecNormalize statistics and ``card.md`` (the command, commit
and held-out table that produced it). The same ``pretrained:<name>`` string works wherever a CLI takes a run
directory (``python -m traingym.agents.evaluate --policies pretrained:digits-mlp keep``). The files are SB3 zips
and a VecNormalize pickle: load only agents of this package or your own runs.

Export (after a run)::

    python -m traingym.experiments.export_pretrained --run-dir runs/<run> --name digits-mlp
"""

from __future__ import annotations

from pathlib import Path

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
