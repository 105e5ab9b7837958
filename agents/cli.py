"""``train_agent.py`` / ``traingym-train``: train an agent, then compare it with baselines on held-out instances."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from traingym.agents.args import SMOKE_PRESET, Args
from traingym.agents.dataclass_cli import build_parser, explicit_args, make_from_cli


def parse_args(argv: Sequence[str] | None = None) -> Args:
    """Defaults, then the ``--smoke`` preset, then (``--resume``) the run's saved config, then explicit flags."""
    parser = build_parser(Args, prog="train_agent.py")
    given = explicit_args(parser, Args, argv)
    values: dict[str, Any] = {}
    if given.get("smoke"):
        values.update(SMOKE_PRESET)
    if given.get("resume"):
        from traingym.agents.train import RunError, load_run_args

        if not given.get("run_dir"):
            parser.error("--resume needs --run-dir (the run to resume)")
        try:
            values.update(Args.from_json(load_run_args(given["run_dir"])).to_json())
        except RunError as error:
            parser.error(str(error))
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    values.update(given)
    return make_from_cli(Args, parser, values)


def main(argv: Sequence[str] | None = None) -> int:
    """Train, save, evaluate; returns the exit status."""
    args = parse_args(argv)
    from traingym.advisors.errors import AdvisorUnavailableError
    from traingym.agents.train import RunError, final_evaluation, train

    try:
        result = train(args)
    except (RunError, AdvisorUnavailableError) as error:  # a missing model or wheel: say what to install
        build_parser(Args, prog="train_agent.py").error(str(error))
    result = final_evaluation(args, result)
    print(f"run directory: {result.run_dir} (train {result.train_seconds:.0f} s, "
          f"evaluation {result.eval_seconds:.0f} s)")
    return 0
