"""``train_agent.py`` / ``traingym-train``: train an agent, then compare it with baselines on held-out instances."""

from __future__ import annotations

from collections.abc import Sequence

from traingym.agents.args import SMOKE_PRESET, Args
from traingym.protocol.cli import parse_cli, usage_error

PROG = "train_agent.py"


def parse_args(argv: Sequence[str] | None = None) -> Args:
    """Defaults, then the ``--smoke`` preset, then (``--resume``) the run's saved config, then explicit flags.

    The flags are read twice: once to learn whether ``--smoke`` / ``--resume`` ask for other defaults, once more
    over those defaults (tyro's ``default=``), so the flags given always win.
    """
    given = parse_cli(Args, argv, PROG)
    if not (given.smoke or given.resume):
        return given
    values = dict(SMOKE_PRESET) if given.smoke else {}
    if given.resume:
        from traingym.agents.train import RunError, load_run_args

        try:
            values.update(Args.from_json(load_run_args(str(given.run_dir))).to_json())
        except (RunError, ValueError) as error:
            usage_error(PROG, str(error))
    try:
        base = Args.from_json({**values, "smoke": given.smoke, "resume": given.resume, "run_dir": given.run_dir})
    except ValueError as error:
        usage_error(PROG, str(error))
    return parse_cli(Args, argv, PROG, default=base)


def main(argv: Sequence[str] | None = None) -> int:
    """Train, save, evaluate; returns the exit status."""
    args = parse_args(argv)
    from traingym.advisors.errors import AdvisorUnavailableError
    from traingym.agents.ray_support import RayAddressError
    from traingym.agents.train import RunError, final_evaluation, prepare_baselines, train

    baselines = prepare_baselines(args)  # a sweep for a family of your own runs before any training is paid for
    try:
        if args.backend == "rllib":
            from traingym.agents.rllib_backend import train_rllib

            result = train_rllib(args)
        else:
            result = train(args)
    except (RunError, AdvisorUnavailableError, RayAddressError) as error:  # say what to install or start
        usage_error(PROG, str(error))
    result = final_evaluation(args, result, baselines)
    print(f"run directory: {result.run_dir} (train {result.train_seconds:.0f} s, "
          f"evaluation {result.eval_seconds:.0f} s)")
    return 0
