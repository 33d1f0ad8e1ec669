"""A CoA-Request changes the current login's NFs, not the user's stored profile (RFC 5176
3.1): the override holds across roams (the same Acct-Session-Id) and is gone when the login
ends, so the stored required_nfs apply again at the next login."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from netfate.db import Database, repo
from netfate.orchestrator import snapshot
from netfate.orchestrator.aaa import _set_nfs
from netfate.orchestrator.repair import user_records
from netfate.orchestrator.sessions import Login, record_association
from tests.unit.two_cpes_db import two_cpes_db


def _desc(name: str) -> dict[str, Any]:
    return {"name": name, "version": "1.0", "ports": [{"name": "lan"}, {"name": "wan"}]}


@pytest.fixture
def db(tmp_path: Path) -> Any:
    def seed(s: Session) -> None:
        for nf in ("firewall", "rate-limiter", "nat"):
            repo.add_bundle(s, nf.encode(), name=nf, version="1.0", descriptor=_desc(nf))
        repo.create_user(s, "u1", "pw-u1-0123", required_nfs=["firewall"])

    yield from two_cpes_db(tmp_path, seed)


def _wanted(db: Database) -> tuple[tuple[str, ...], tuple[str, ...], list[str]]:
    """(the planner's NFs for u1, the repairs' NFs for u1, the stored required_nfs)."""
    with db.session() as s:
        view = next(u for u in snapshot.build(s).users if u.name == "u1")
        rec = [r for r in user_records(s) if r.user == "u1"]
        stored = list(repo.get_user(s, "u1").required_nfs)
    return view.required_nfs, (rec[0].required_nfs if rec else ()), stored


def _acct(db: Database) -> str:
    with db.session() as s:
        return str(repo.active_session(s, "u1").acct_session_id)


def test_coa_nfs_hold_for_the_login_and_the_profile_returns_after(db: Database) -> None:
    with db.session() as s:
        record_association(s, "u1", "cpe1", "02:00:00:00:00:01", "10.0.0.2", Login())
    assert _wanted(db) == (("firewall",), ("firewall",), ["firewall"])
    with db.session() as s:
        assert _set_nfs(s, _acct(db), ("rate-limiter", "nat")) == []
    assert _wanted(db) == (("rate-limiter", "nat"), ("rate-limiter", "nat"), ["firewall"])
    # A roam: the same login, the override goes with it.
    with db.session() as s:
        record_association(s, "u1", "cpe2", "02:00:00:00:00:01", "10.0.0.2", None)
    assert _wanted(db)[:2] == (("rate-limiter", "nat"), ("rate-limiter", "nat"))
    # The login ends (logout, idle, Disconnect, Session-Timeout): the profile applies again.
    with db.session() as s:
        repo.end_session(s, repo.active_session(s, "u1").id, cause="User-Request")
        record_association(s, "u1", "cpe1", "02:00:00:00:00:01", "10.0.0.2", Login())
    assert _wanted(db) == (("firewall",), ("firewall",), ["firewall"])


def test_coa_nfs_of_another_form_change_nothing(db: Database) -> None:
    with db.session() as s:
        record_association(s, "u1", "cpe1", None, None, Login())
    acct = _acct(db)
    with db.session() as s:
        assert _set_nfs(s, acct, ("no-such-nf",)) == ["no-such-nf"]
        assert _set_nfs(s, acct, ("nat", "nat")) == ["nat (twice)"]
        assert _set_nfs(s, acct, tuple(f"nf{i}" for i in range(17)))
    assert _wanted(db)[0] == ("firewall",)
    with db.session() as s:  # an empty list is an override too: no NFs for this login
        assert _set_nfs(s, acct, ()) == []
    assert _wanted(db) == ((), (), ["firewall"])


def test_a_calling_station_id_that_is_no_mac_matches_no_session(db: Database) -> None:
    from netfate.orchestrator.aaa import find_sessions

    with db.session() as s:
        record_association(s, "u1", "cpe1", None, None, Login())  # a session without a MAC
        assert find_sessions(s, {"Calling-Station-Id": "zz"}) == []
        assert find_sessions(s, {"Calling-Station-Id": ""}) == []
        record_association(s, "u1", "cpe1", "02:00:00:00:00:01", None, Login())
        found = find_sessions(s, {"Calling-Station-Id": "02-00-00-00-00-01"})
        assert [f[0] for f in found] == ["u1"]
        assert find_sessions(s, {"Calling-Station-Id": "02-00-00-00-00"}) == []
