"""The one way TrainGym entry points read their command line: tyro over a frozen ``@dataclass`` Args (CleanRL style).

Every entry point (``train_agent.py``, ``python -m traingym.agents.evaluate`` / ``ablate`` / ``good_defaults``,
``python -m traingym.hpo``) calls :func:`parse_cli`. Flags are the field names in kebab case, help lines are the
fields' docstrings. A bad value, whether tyro cannot parse it or the dataclass's ``__post_init__`` rejects it, ends
the program with one ``<prog>: error: <message>`` line on stderr and exit status 2 (tyro's own error box is folded
into that line), never a traceback.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, NoReturn, TypeVar

import tyro
from tyro.constructors import PrimitiveConstructorSpec

T = TypeVar("T")


def _split(values: list[str]) -> tuple[str, ...]:
    return tuple(v for value in values for v in value.split(",") if v)


def _split_ints(values: list[str]) -> tuple[int, ...]:
    return tuple(int(v) for v in _split(values))


StrTuple = Annotated[tuple[str, ...], PrimitiveConstructorSpec(
    nargs="*", metavar="STR [STR ...]", instance_from_str=_split,
    is_instance=lambda x: isinstance(x, tuple) and all(isinstance(v, str) for v in x),
    str_from_instance=lambda x: list(x))]
"""Strings given as ``--flag a b`` or ``--flag a,b``."""
IntTuple = Annotated[tuple[int, ...], PrimitiveConstructorSpec(
    nargs="*", metavar="INT [INT ...]", instance_from_str=_split_ints,
    is_instance=lambda x: isinstance(x, tuple) and all(isinstance(v, int) for v in x),
    str_from_instance=lambda x: [str(v) for v in x])]
"""Integers given as ``--flag 1 2`` or ``--flag 1,2``."""

_BOX_CHARS = "│╭╮╰╯─┌┐└┘├┤"
_CLASS_PREFIX = re.compile(r"^Error parsing [A-Z]\w*: ")
_TITLE = re.compile(r"^[A-Z][a-z]+( [a-z]+)*$")
"""A box title ("Value error", "Invalid choice"): in the ASCII box rich draws for some streams it is a line of its
own above a dashed rule."""
"""tyro's prefix on a ValueError raised by the dataclass itself (the message already names the flag)."""


def usage_error(prog: str, message: str) -> NoReturn:
    """Print one ``<prog>: error: ...`` line to stderr and exit with status 2 (argparse's convention)."""
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def _one_line(box: str) -> str:
    """The message of tyro's error box on one line (without the help excerpt and the "see --help" footer)."""
    lines: list[str] = []
    for raw in box.splitlines():
        if raw.lstrip().startswith("╭"):  # the title bar ("Value error", "Invalid choice")
            continue
        line = raw.strip().strip(_BOX_CHARS + "|").strip()
        if not line or set(line) <= set(_BOX_CHARS + "-+|= "):
            if len(lines) == 1 and _TITLE.match(lines[0]):  # the ASCII box's title, above its first rule
                lines.clear()
                continue
            if lines:
                lines.append("")  # a separator: keep only the first section below
            continue
        if line.startswith(("For full helptext", "Argument helptext")):
            break
        lines.append(line)
    message = " ".join(lines).split("  ")[0].strip()
    return _CLASS_PREFIX.sub("", message) or "invalid arguments"


@contextlib.contextmanager
def _terminal_columns(columns: int) -> Iterator[None]:
    """Make ``shutil.get_terminal_size`` report ``columns`` (it reads ``$COLUMNS`` first)."""
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(columns)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = before


def parse_cli(target: type[T] | Any, argv: Sequence[str] | None, prog: str, default: T | None = None,
              description: str | None = None) -> T:
    """Parse ``argv`` (default ``sys.argv[1:]``) into ``target`` with tyro.

    Args:
        target: a frozen dataclass, or a ``Union`` of ``Annotated[..., tyro.conf.subcommand(name)]`` dataclasses.
        prog: program name shown in usage and error lines.
        default: an instance whose values are the defaults (flags the user gives override them), e.g. a preset.
        description: help text above the flags (default: the dataclass docstring).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    captured = io.StringIO()
    kwargs: dict[str, Any] = {} if default is None else {"default": default}
    try:
        # tyro draws an error box as wide as the terminal; we print its message as one line instead, so the box
        # is drawn unwrapped (a wide terminal) unless help is asked for.
        wide = contextlib.nullcontext() if {"-h", "--help"} & set(argv) else _terminal_columns(100_000)
        with contextlib.redirect_stderr(captured), wide:
            result = tyro.cli(target, args=argv, prog=prog, description=description, **kwargs)
    except SystemExit as exit_:
        if exit_.code in (0, None):
            raise
        usage_error(prog, _one_line(captured.getvalue()))
    except ValueError as error:  # the dataclass's own validation (__post_init__)
        usage_error(prog, str(error))
    sys.stderr.write(captured.getvalue())  # warnings emitted while the arguments were built
    return result
