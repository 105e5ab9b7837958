"""``python -m traingym.hpo study ...`` (one study on one instance) and ``python -m traingym.hpo compare ...``
(the compute-matched comparison on held-out instances)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Annotated, Any, Union

import numpy as np
import tyro
from traingym.advisors import AdvisorUnavailableError
from traingym.hpo.compare import CompareConfig, run_and_print
from traingym.hpo.study import HPOConfig, make_sampler, run_study
from traingym.protocol.cli import IntTuple, parse_cli, usage_error

PROG = "python -m traingym.hpo"


@dataclass(frozen=True)
class StudyArgs(HPOConfig):
    """One TPE / LLM-TPE study on one TrainGym instance; prints the best trial (per budget) as JSON."""

    budgets: IntTuple = ()
    """Also report the best of the first N trials, for each N given."""
    json: str | None = None
    """Write the full result as JSON to this path."""

    def config(self) -> HPOConfig:
        """The study itself (without the output options)."""
        return HPOConfig(**{f.name: getattr(self, f.name) for f in fields(HPOConfig)})


Command = Union[  # noqa: UP007 - tyro reads the subcommands from a runtime Union
    Annotated[StudyArgs, tyro.conf.subcommand("study")],
    Annotated[CompareConfig, tyro.conf.subcommand("compare")],
]


def study(args: StudyArgs) -> int:
    import torch

    torch.set_num_threads(1)
    config = args.config()
    try:  # an unknown or unavailable --advisor is a usage error, not a traceback from inside the study
        sampler = make_sampler(config)
    except (ValueError, AdvisorUnavailableError) as error:
        usage_error(PROG, f"--advisor {config.advisor!r}: {error}")
    result = run_study(config, sampler=sampler)
    rows = [asdict(result.best_at(n)) for n in sorted(set(args.budgets)) if n <= config.n_trials] or [
        asdict(result.best_at())]
    print(json.dumps({"instance": result.instance, "results": rows, "sampler_stats": result.sampler_stats},
                     indent=1, default=_json_default))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result.as_dict(), handle, indent=1, default=_json_default)
    return 0


def compare(config: CompareConfig) -> int:
    started = time.perf_counter()
    run_and_print(config, PROG)
    print(f"wrote {config.out_dir}/table.csv, table.json, accuracy_vs_compute.png "
          f"({time.perf_counter() - started:.0f}s)", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the subcommand and its flags, run it; returns the exit status."""
    command = parse_cli(Command, argv, PROG, description="Static HPO of TrainGym instances (TPE, LLM-TPE).")
    return study(command) if isinstance(command, StudyArgs) else compare(command)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-able: {type(value).__name__}")


if __name__ == "__main__":
    raise SystemExit(main())
