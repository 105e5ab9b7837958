"""Resolving a user's ``"package.module:ClassName"`` spec (advisors, task families): one implementation.

The user names the module in their own configuration; importing it is the point of the spec form.
"""

from __future__ import annotations

import pkgutil
import re

USER_CLASS_PATTERN = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
"""The accepted form: a dotted module path, a colon, a class name."""


def is_user_class_spec(text: str) -> bool:
    """Whether ``text`` has the ``package.module:ClassName`` form."""
    return bool(USER_CLASS_PATTERN.match(text))


def resolve_user_class(spec: str, what: str, accepted: str) -> type:
    """Import the class a ``"package.module:ClassName"`` spec names.

    Args:
        spec: the spec.
        what: what the class is for, in messages (``"advisor class"``, ``"task family"``).
        accepted: the accepted forms, appended to every message.

    Raises:
        ValueError: the module or attribute cannot be imported, or it is not a class.
    """
    try:
        target = pkgutil.resolve_name(spec)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(f"cannot import {what} {spec!r} ({type(error).__name__}: {error}). "
                         f"Accepted: {accepted}") from error
    if not isinstance(target, type):
        raise ValueError(f"{spec!r} is not a class. Accepted: {accepted}")
    return target
