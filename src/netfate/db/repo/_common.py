"""What the repository modules share: validation, lookups and error mapping."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import Select, exc
from sqlalchemy.orm import Session

from netfate import naming
from netfate.db.models import Base
from netfate.errors import Conflict, InvalidInput, NetfateError, NotFound

E = TypeVar("E", bound=StrEnum)
M = TypeVar("M", bound=Base)

NAME_MAX = 32
ID_MAX = 128


def stamp(now: float | None) -> float:
    return time.time() if now is None else float(now)


def check_name(kind: str, value: str, max_len: int = NAME_MAX) -> str:
    """A node, user or NF name: safe in resource names (see netfate.naming)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{kind} must be a string, not {type(value).__name__}")
    try:
        return naming.check_token(kind, value, max_len)
    except ValueError as e:
        raise InvalidInput(str(e)) from None


def check_text(kind: str, value: str | None, *, optional: bool = False) -> str | None:
    """Free text for a column: a non-empty string without NUL (PostgreSQL refuses NUL)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or "\x00" in value:
        raise InvalidInput(f"{kind} must be a non-empty string without NUL, not {value!r}")
    return value


def check_dict(kind: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise InvalidInput(f"{kind} must be a JSON object (a dict with str keys)")
    return dict(value)


def check_str_list(kind: str, value: Any, *, unique: bool = False) -> list[str]:
    if isinstance(value, str | bytes) or not all(isinstance(v, str) and v for v in value):
        raise InvalidInput(f"{kind} must be a list of non-empty strings, not {value!r}")
    out = list(value)
    if unique and len(set(out)) != len(out):
        raise InvalidInput(f"{kind} lists a name twice: {out}")
    return out


def as_enum(cls: type[E], value: E | str, kind: str) -> E:
    try:
        return cls(value)
    except ValueError:
        allowed = "|".join(m.value for m in cls)
        raise InvalidInput(f"{kind} {value!r} is not one of {allowed}") from None


def get_or_404(session: Session, model: type[M], key: Any, what: str) -> M:
    """The row with primary key ``key``, or NotFound naming it."""
    # A string no row can have (PostgreSQL would refuse the NUL) is simply not found.
    row = None if isinstance(key, str) and "\x00" in key else session.get(model, key)
    if row is None:
        raise NotFound(f"{what} {key!r} does not exist")
    return row


def _kind(e: exc.DBAPIError) -> str:
    """'unique', 'fk' or 'invalid', from the SQLSTATE (PostgreSQL) or message (SQLite)."""
    code = getattr(e.orig, "sqlstate", None)
    text = str(e.orig).upper()
    if code == "23505" or "UNIQUE CONSTRAINT" in text:
        return "unique"
    if code == "23503" or "FOREIGN KEY" in text:
        return "fk"
    return "invalid"


@contextmanager
def guard(
    session: Session,
    what: str,
    *,
    unique: NetfateError | None = None,
    fk: NetfateError | None = None,
) -> Iterator[None]:
    """Run a change in a savepoint and flush it: a constraint violation becomes Conflict,
    NotFound or InvalidInput, and the session stays usable after the error."""
    try:
        with session.begin_nested():
            yield
    except exc.IntegrityError as e:
        kind = _kind(e)
        if kind == "unique":
            raise (unique or Conflict(f"{what}: already exists")) from e
        if kind == "fk":
            missing = NotFound(f"{what}: refers to a node, user or bundle that does not exist")
            raise (fk or missing) from e
        raise InvalidInput(f"{what}: a value breaks a constraint ({e.orig})") from e
    except exc.DataError as e:
        raise InvalidInput(f"{what}: a value is not valid for the database ({e.orig})") from e


S = TypeVar("S", bound=Select[Any])


def where_given(q: S, *filters: tuple[Any, Any]) -> S:
    """`q` narrowed to ``column == value`` for each (column, value) whose value is not None."""
    for column, value in filters:
        if value is not None:
            q = q.where(column == value)
    return q
