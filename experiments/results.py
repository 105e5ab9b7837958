"""Measured results as Markdown (+ JSON) in ``docs/results/``, stamped with command, commit, date and machine.

Every script that measures a figure the docs quote writes it through :func:`write_result`, so no number is
hand-copied into the docs, a docstring or a comment.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from traingym.protocol.provenance import git_commit, machine_description

RESULTS_DIR = Path(__file__).resolve().parent.parent / "docs" / "results"
"""``docs/results`` of the source checkout (an installed copy without docs writes under the working directory)."""


def check_page_name(flag: str, name: str) -> None:
    """Raise ValueError naming ``flag`` unless ``name`` is a page's file stem: ASCII letters, digits, underscores."""
    if not name or not name.isascii() or not name.replace("_", "").isalnum():
        raise ValueError(f"{flag} must be letters, digits and underscores, got {name!r}")


def family_page_name(prefix: str, env_id: str) -> str:
    """``<prefix>_<family>``: a registered id's task family, in page-name characters (a user's ``module:Class``
    family, or an id without a task, becomes letters, digits and underscores)."""
    import re

    import gymnasium as gym
    import traingym.envs  # noqa: F401  (registers the ids)

    task = str(gym.spec(env_id).kwargs.get("task") or env_id.split("/")[-1])
    return f"{prefix}_" + re.sub(r"[^a-z0-9]+", "_", task.lower()).strip("_")


def results_dir() -> Path:
    return RESULTS_DIR if RESULTS_DIR.parent.is_dir() else Path.cwd() / "docs" / "results"


def write_result(name: str, title: str, body: str, data: Any = None, command: str | None = None,
                 out_dir: Path | None = None) -> Path:
    """Write ``<out_dir>/<name>.md`` (title, provenance, ``body``) and, with ``data``, ``<name>.json``.

    Args:
        name: file stem, e.g. ``"benchmarks"``.
        title: the Markdown page title.
        body: Markdown (tables, notes) produced by the measuring script.
        data: JSON-able raw figures, written next to the page with the same provenance.
        command: the command that measured it (default: this process's command line).
        out_dir: default :func:`results_dir`.
    """
    out_dir = out_dir or results_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    command = command or " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])
    provenance = {"command": command, "commit": git_commit(),
                  "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                  "machine": machine_description()}
    header = "\n".join(f"- {key}: `{value}`" if key == "command" else f"- {key}: {value}"
                       for key, value in provenance.items())
    path = out_dir / f"{name}.md"
    path.write_text(f"# {title}\n\n{header}\n\n{body.rstrip()}\n")
    if data is not None:
        (out_dir / f"{name}.json").write_text(json.dumps({**provenance, "data": data}, indent=2, default=str) + "\n")
    return path


def stored_data(name: str, out_dir: Path | None = None) -> dict[str, Any]:
    """The ``data`` a previous :func:`write_result` stored in ``<name>.json`` ({} when there is none): scripts
    whose page gathers several runs (one section per run) keep the other runs' sections from it."""
    path = (out_dir or results_dir()) / f"{name}.json"
    if not path.exists():
        return {}
    stored = json.loads(path.read_text())
    return stored.get("data") or {}
