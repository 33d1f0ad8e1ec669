"""A notification as NFs write them is stored, never lost to an exception in the bus
callback (found by the breaker pass): no source, empty owner or id (nfcommon.notify without
NF_OWNER), a NUL, a timestamp that is not finite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netfate.bus.messages import Notification
from netfate.db import Database, repo
from netfate.db.session import sqlite_url
from netfate.orchestrator.service_db import store_notification

BASE = Notification(node="cpe1", nf_id="i", owner="u", type="flood", severity="critical",
                    source="10.0.0.1", ts=1.0)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = Database.create(sqlite_url(tmp_path / "state"))
    try:
        yield d
    finally:
        d.dispose()


@pytest.mark.parametrize(("update", "column", "stored"), [
    ({"source": None}, "source", "unknown"),
    ({"type": ""}, "type", "unknown"),
    ({"severity": ""}, "severity", "warning"),
    ({"owner": ""}, "owner", None),
    ({"nf_id": ""}, "nf_instance_id", None),
    ({"type": "fl\x00ood"}, "type", "flood"),
])
def test_odd_notifications_are_stored(db: Database, update: dict[str, Any], column: str,
                                      stored: object) -> None:
    with db.session() as s:
        nid = store_notification(s, BASE.model_copy(update=update))
        assert nid is not None
        (row,) = repo.list_notifications(s)
        assert getattr(row, column) == stored


def test_a_timestamp_that_is_not_finite_is_replaced(db: Database) -> None:
    with db.session() as s:
        store_notification(s, BASE.model_copy(update={"ts": float("nan")}))
        (row,) = repo.list_notifications(s)
        assert row.ts == row.ts and row.ts > 0  # not NaN
