"""Checks of what callers hand the repository, each raising InvalidInput naming the field:
``check.name("user", name)``, ``check.enum(OpState, state, "operation_state")``..."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypeVar

from netfate import naming
from netfate.errors import InvalidInput

E = TypeVar("E", bound=StrEnum)

NAME_MAX = 32
ID_MAX = 128


def name(kind: str, value: str, max_len: int = NAME_MAX) -> str:
    """A node, user or NF name: safe in resource names (see netfate.naming)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{kind} must be a string, not {type(value).__name__}")
    try:
        return naming.check_token(kind, value, max_len)
    except ValueError as e:
        raise InvalidInput(str(e)) from None


def text(kind: str, value: str | None, *, optional: bool = False) -> str | None:
    """Free text for a column: a non-empty string without NUL (PostgreSQL refuses NUL)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or "\x00" in value:
        raise InvalidInput(f"{kind} must be a non-empty string without NUL, not {value!r}")
    return value


def mapping(kind: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise InvalidInput(f"{kind} must be a JSON object (a dict with str keys)")
    return dict(value)


def str_list(kind: str, value: Any, *, unique: bool = False) -> list[str]:
    if isinstance(value, str | bytes) or not all(isinstance(v, str) and v for v in value):
        raise InvalidInput(f"{kind} must be a list of non-empty strings, not {value!r}")
    out = list(value)
    if unique and len(set(out)) != len(out):
        raise InvalidInput(f"{kind} lists a name twice: {out}")
    return out


def enum(cls: type[E], value: E | str, kind: str) -> E:
    try:
        return cls(value)
    except ValueError:
        allowed = "|".join(m.value for m in cls)
        raise InvalidInput(f"{kind} {value!r} is not one of {allowed}") from None
