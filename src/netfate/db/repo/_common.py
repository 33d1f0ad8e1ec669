"""What the repository modules share: lookups, filters and error mapping (validation: check)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Select, exc
from sqlalchemy.orm import Session

from netfate.db.models import Base
from netfate.errors import Conflict, InvalidInput, NetfateError, NotFound

M = TypeVar("M", bound=Base)


def stamp(now: float | None) -> float:
    return time.time() if now is None else float(now)


def set_given(row: Base, **columns: Any) -> None:
    """Set the columns given a value; None means "keep what is stored"."""
    for column, value in columns.items():
        if value is not None:
            setattr(row, column, value)


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
