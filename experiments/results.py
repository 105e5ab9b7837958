"""Measured results as Markdown (+ JSON) in ``docs/results/``, stamped with command, commit, date and machine.

Every script that measures a figure the docs quote writes it through :func:`write_result`, so no number is
hand-copied into the docs, a docstring or a comment.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent.parent / "docs" / "results"
"""``docs/results`` of the source checkout (an installed copy without docs writes under the working directory)."""


def machine_description() -> str:
    """CPU model, cores, memory, torch version and GPU (if any) of this machine, in one line."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        memory = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        memory = "unknown memory"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {memory}, {gpu}, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def git_commit() -> str:
    """The checkout's commit (``+dirty`` when it has uncommitted changes), or ``unknown`` outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


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
