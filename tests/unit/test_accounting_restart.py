"""Accounting survives an orchestrator restart (RFC 2866 5.3, 5.5): the next Interim-Update
and the Stop of the same Acct-Session-Id carry the totals since the Start, with no second
Start; a login that ended while the orchestrator was down gets its Stop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from netfate.db import Database, repo
from netfate.db.models import AcctOpen
from netfate.orchestrator import accounting as acct
from netfate.orchestrator.sessions import Login, record_association
from netfate.radius.accounting import AcctRecord, Usage, UsageMeter
from tests.unit.two_cpes_db import two_cpes_db


@pytest.fixture
def db(tmp_path: Path) -> Any:
    yield from two_cpes_db(tmp_path, lambda s: repo.create_user(s, "u1", "pw-u1-0123"))


def _tick(a: acct.Accounting, sent: list[AcctRecord]) -> list[tuple[str, str]]:
    sent.clear()
    asyncio.run(a.tick())
    return [(r.status, r.user) for r in sent]


async def _never(user: str, cause: str, acct_id: str) -> None:
    raise AssertionError("no session ends here")


def _accounting(db: Database, clock: list[float]) -> acct.Accounting:
    """A fresh orchestrator's accounting (nothing in memory), its clock reading clock[0]."""
    return acct.Accounting(db, object(), 10.0, _never,  # type: ignore[arg-type]
                           clock=lambda: clock[0])


def _u1_started(db: Database, monkeypatch: pytest.MonkeyPatch
                ) -> tuple[acct.Accounting, list[AcctRecord], list[float]]:
    """The accounting, the records it sends (appended to the list) and its clock, after u1
    logged in at cpe1 and their Start was sent."""
    sent: list[AcctRecord] = []
    monkeypatch.setattr(acct, "send", lambda _client, rec: sent.append(rec) or 0.0)
    clock = [time.time()]
    a = _accounting(db, clock)
    with db.session() as s:
        record_association(s, "u1", "cpe1", None, None, Login())
    _tick(a, sent)
    return a, sent, clock


def test_totals_go_on_after_a_restart_and_the_stop_carries_them(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[AcctRecord] = []
    monkeypatch.setattr(acct, "send", lambda _client, rec: sent.append(rec) or 0.0)
    clock = [time.time()]

    def orchestrator() -> acct.Accounting:  # a fresh process: nothing in memory
        return _accounting(db, clock)

    # The switch had counted 1000 octets of u1's flows before this login: its baseline.
    a = orchestrator()
    a.counters("cpe1", {"u1": Usage(1000, 10, 1000, 10)})
    with db.session() as s:
        record_association(s, "u1", "cpe1", "02:00:00:00:00:01", "10.0.0.2", Login())
    assert _tick(a, sent) == [("Start", "u1")]
    sid = sent[0].session_id
    a.counters("cpe1", {"u1": Usage(1100, 11, 1300, 13)})
    clock[0] += 10
    assert _tick(a, sent) == [("Interim-Update", "u1")]
    assert sent[0].usage == Usage(100, 1, 300, 3)

    # kill -9: a new orchestrator, the same database.
    a = orchestrator()
    assert _tick(a, sent) == []  # no second Start
    a.counters("cpe1", {"u1": Usage(1150, 12, 1400, 14)})  # the same flows count on
    clock[0] += 10
    assert _tick(a, sent) == [("Interim-Update", "u1")]
    assert (sent[0].session_id, sent[0].usage) == (sid, Usage(150, 2, 400, 4))
    a.counters("cpe1", {"u1": Usage(20, 1, 30, 1)})  # flows rewritten: counting restarts
    clock[0] += 10
    assert _tick(a, sent) == [("Interim-Update", "u1")]
    assert sent[0].usage == Usage(170, 3, 430, 5)

    # Down again; meanwhile the user logs out. The next orchestrator sends the Stop, with
    # the totals, for the same session id, and forgets it.
    a = orchestrator()
    with db.session() as s:
        repo.end_session(s, repo.active_session(s, "u1").id, cause="User-Request")
    assert _tick(a, sent) == [("Stop", "u1")]
    assert (sent[0].session_id, sent[0].cause, sent[0].usage) == (
        sid, "User-Request", Usage(170, 3, 430, 5))
    with db.session() as s:
        assert s.query(AcctOpen).count() == 0
    assert _tick(orchestrator(), sent) == []


def test_a_start_not_answered_before_a_restart_is_sent_after_it(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    from netfate.radius.client import RadiusError

    def down(_client: object, rec: AcctRecord) -> float:
        raise RadiusError("no answer")

    monkeypatch.setattr(acct, "send", down)
    a = acct.Accounting(db, object(), 10.0, _never)  # type: ignore[arg-type]
    with db.session() as s:
        record_association(s, "u1", "cpe1", None, None, Login())
    asyncio.run(a.tick())
    sent: list[AcctRecord] = []
    monkeypatch.setattr(acct, "send", lambda _client, rec: sent.append(rec) or 0.0)
    assert _tick(acct.Accounting(db, object(), 10.0, _never),  # type: ignore[arg-type]
                 sent) == [("Start", "u1")]


def test_reported_totals_never_go_back_even_from_a_damaged_row(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    a, sent, clock = _u1_started(db, monkeypatch)
    a.counters("cpe1", {"u1": Usage(50, 5, 60, 6)})
    clock[0] += 10
    _tick(a, sent)
    with db.session() as s:
        s.get(AcctOpen, sent[0].session_id).meter = {"last": {"cpe1": ["x"]}}
    a = _accounting(db, clock)
    clock[0] += 10
    assert _tick(a, sent) == [("Interim-Update", "u1")]
    assert sent[0].usage == Usage(50, 5, 60, 6)


def test_usage_meter_round_trips_and_refuses_what_is_not_one() -> None:
    m = UsageMeter()
    m.start_from("cpe1", Usage(5, 1, 5, 1))
    m.update("cpe1", Usage(9, 2, 9, 2))
    back = UsageMeter.from_json(m.to_json())
    assert back.total() == m.total() == Usage(4, 1, 4, 1)
    for bad in ([], {"last": []}, {"last": {"n": [1, 2, 3]}}, {"base": {"n": [1, 2, 3, True]}},
                {"last": {"n": [1.5, 2, 3, 4]}}):
        with pytest.raises(ValueError):
            UsageMeter.from_json(bad)


def test_a_reading_that_is_not_a_counter_is_ignored(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    a, sent, clock = _u1_started(db, monkeypatch)
    a.counters("cpe1", {"u1": Usage(100, 1, 100, 1)})
    a.counters("cpe1", {"u1": Usage(-5, 1, 1, 1)})        # negative: not a counter
    a.counters("cpe1", {"u1": Usage(2**64, 1, 1, 1)})     # past 64 bits
    clock[0] += 10
    assert _tick(a, sent) == [("Interim-Update", "u1")]
    assert sent[0].usage == Usage(100, 1, 100, 1)
