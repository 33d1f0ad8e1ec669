"""A fresh database with two CPEs, for unit tests of the orchestrator's records."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy.orm import Session

from netfate.db import Database, repo
from netfate.db.session import sqlite_url


def two_cpes_db(tmp_path: Path, seed: Callable[[Session], object]) -> Iterator[Database]:
    """For a fixture to yield from: a database in `tmp_path`/state with the nodes cpe1 and
    cpe2 (CPEs) and what `seed` adds in the same session; disposed of after."""
    d = Database.create(sqlite_url(tmp_path / "state"))
    with d.session() as s:
        repo.upsert_node(s, "cpe1", role="cpe")
        repo.upsert_node(s, "cpe2", role="cpe")
        seed(s)
    yield d
    d.dispose()
