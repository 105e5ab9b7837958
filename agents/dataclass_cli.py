"""An argparse parser generated from a dataclass: one ``--flag`` per field, help from the field's docstring.

CleanRL style without the ``tyro`` dependency: a field's docstring (the string literal right below it) is its help
line, ``Literal[...]`` types become choices, ``bool`` becomes ``--x/--no-x`` and ``tuple[str, ...]`` takes one or
more values (commas also separate them).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal, TypeVar, Union

T = TypeVar("T")


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass, read from its source (empty when the source is missing)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (tp, False)."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _split_values(values: Sequence[str], convert: Any = str) -> tuple[Any, ...]:
    return tuple(convert(v) for value in values for v in value.split(",") if v)


def _none_or(convert: Any) -> Any:
    def parse(text: str) -> Any:
        return None if text.lower() in ("none", "null", "") else convert(text)

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def build_parser(cls: type, description: str | None = None, prog: str | None = None) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with one option per field of dataclass ``cls``; every default is ``SUPPRESS``,
    so ``parse_args`` returns only the options the user gave (see :func:`explicit_args`)."""
    parser = argparse.ArgumentParser(prog=prog, description=description or (cls.__doc__ or "").strip(),
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                     argument_default=argparse.SUPPRESS)
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for field in dataclasses.fields(cls):
        flag = "--" + field.name.replace("_", "-")
        tp, optional = _unwrap_optional(hints[field.name])
        default = field.default if field.default is not dataclasses.MISSING else None
        if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = field.default_factory()  # type: ignore[misc]
        kwargs: dict[str, Any] = {"help": f"{docs.get(field.name, '')} (default: {default!r})", "dest": field.name}
        origin = typing.get_origin(tp)
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
            kwargs["help"] = docs.get(field.name, "") + f" (default: {default!r})"
        elif origin is Literal:
            kwargs["choices"] = list(typing.get_args(tp))
            kwargs["type"] = _none_or(str) if optional else str
        elif origin is tuple:
            kwargs["nargs"] = "+"
            kwargs["metavar"] = field.name.upper().rstrip("S") or "VALUE"
            element = typing.get_args(tp)[0]
            if element not in (str, int, float):
                raise TypeError(f"unsupported tuple element type {element!r} for field {field.name!r}")
        elif tp in (int, float, str):
            kwargs["type"] = _none_or(tp) if optional else tp
        else:
            raise TypeError(f"unsupported type {tp!r} for field {field.name!r} of {cls.__name__}")
        parser.add_argument(flag, **kwargs)
    return parser


def explicit_args(parser: argparse.ArgumentParser, cls: type, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse ``argv`` and return only the fields the user set, converted to the field types."""
    namespace = vars(parser.parse_args(argv))
    hints = typing.get_type_hints(cls)
    for name, value in list(namespace.items()):
        tp, _ = _unwrap_optional(hints.get(name, Any))
        if typing.get_origin(tp) is tuple and value is not None:
            element = typing.get_args(tp)[0]
            try:
                namespace[name] = _split_values(value, element)
            except ValueError:
                parser.error(f"--{name.replace('_', '-')}: expected {element.__name__} values, got {value}")
    return namespace


def make_from_cli(cls: type[T], parser: argparse.ArgumentParser, values: dict[str, Any]) -> T:
    """Construct ``cls(**values)``; a ValueError from validation becomes an argparse error (exit 2, no traceback)."""
    try:
        return cls(**values)
    except (ValueError, TypeError) as error:
        parser.error(str(error))
        raise  # unreachable: parser.error exits
