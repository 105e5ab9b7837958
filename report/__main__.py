"""``python -m traingym.report RUN_DIR``: write the run's self-contained ``report.html``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import tyro
from traingym.protocol.cli import parse_cli, usage_error

PROG = "python -m traingym.report"


@dataclass(frozen=True)
class ReportArgs:
    """Write a self-contained HTML report (opens offline) of a training or evaluation run directory."""

    run_dir: tyro.conf.Positional[str]
    """Run directory (train_agent.py's --run-dir or evaluate's --out-dir); only its files are read."""
    out: str | None = None
    """Where to write the report; default RUN_DIR/report.html."""


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_cli(ReportArgs, argv, PROG)
    from traingym.report import RunDataError, write_report

    if not Path(args.run_dir).is_dir():
        usage_error(PROG, f"RUN_DIR {args.run_dir!r} is not a directory")
    try:
        path = write_report(args.run_dir, args.out)
    except RunDataError as error:
        usage_error(PROG, str(error))
    print(f"report written to {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
