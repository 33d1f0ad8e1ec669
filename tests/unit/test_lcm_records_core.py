"""The coordinator's Core writes on the hot path (orchestrator/lcm_records.steer/unsteer,
orchestrator/sessions.record_association) leave the rows repo's ORM functions would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from netfate.db import Database, repo, sqlite_url
from netfate.errors import NotFound
from netfate.orchestrator import lcm_records as rec
from netfate.orchestrator.sessions import Login, record_association


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = Database.create(sqlite_url(tmp_path / "state"))
    with d.session() as s:
        repo.upsert_node(s, "cpe1", role="cpe")
        repo.upsert_node(s, "cpe2", role="cpe")
        repo.create_user(s, "user1", "pw-one", required_nfs=["firewall"])
        repo.update_user_seen(s, "user1", mac="02:00:00:00:00:01", ip="10.0.0.2")
    try:
        yield d
    finally:
        d.dispose()


def _rules(s: Session) -> list[tuple[str, str, list[str], str | None, bool, bool]]:
    return [(r.user_name, r.node_name, list(r.chain), r.mac, r.desired, r.installed)
            for r in repo.list_steering(s)]


def test_steer_unsteer_like_the_repository(db: Database) -> None:
    with db.session() as s:
        rec.steer(s, "user1", "cpe1", ["fw1"], None, None)
    with db.session() as s:  # mac and ip default to the user's; not installed yet
        assert _rules(s) == [("user1", "cpe1", ["fw1"], "02:00:00:00:00:01", True, False)]
        repo.mark_steering_installed(s, user="user1", node="cpe1", installed=True)
    with db.session() as s:
        rec.steer(s, "user1", "cpe1", ["fw1"], None, None)  # unchanged: stays installed
        assert _rules(s)[0][4:] == (True, True)
        rec.steer(s, "user1", "cpe1", ["fw2"], None, None)  # changed: not installed
        assert _rules(s)[0][2:] == (["fw2"], "02:00:00:00:00:01", True, False)
        repo.mark_steering_installed(s, user="user1", node="cpe1", installed=True)
        rec.unsteer(s, "user1", "cpe1")  # installed: kept, not desired
        assert _rules(s)[0][4:] == (False, True)
        rec.unsteer(s, "user1", "cpe1")  # again: nothing changes
        assert _rules(s)[0][4:] == (False, True)
        rec.steer(s, "user1", "cpe2", ["fw3"], "02:00:00:00:00:09", None)
        rec.unsteer(s, "user1", "cpe2")  # never installed: gone
        assert [r[1] for r in _rules(s)] == ["cpe1"]
    with pytest.raises(NotFound), db.session() as s:
        rec.steer(s, "nobody", "cpe1", ["fw1"], None, None)
    with pytest.raises(NotFound), db.session() as s:
        rec.steer(s, "user1", "no-such-node", ["fw1"], None, None)


def test_association_starts_moves_and_replaces_sessions(db: Database) -> None:
    with db.session() as s:
        record_association(s, "user1", "cpe1", "02:00:00:00:00:AA", None, None)
    with db.session() as s:
        (first,) = repo.list_sessions(s, active=True)
        assert (first.node_name, first.mac) == ("cpe1", "02:00:00:00:00:aa")
        record_association(s, "user1", "cpe2", "02:00:00:00:00:aa", None, None)  # roam
    with db.session() as s:
        (moved,) = repo.list_sessions(s, active=True)
        assert moved.node_name == "cpe2" and moved.acct_session_id == first.acct_session_id
        (ended,) = repo.list_sessions(s, active=False)
        assert ended.id == first.id and ended.terminate_cause is None
        assert repo.get_user(s, "user1").access_node == "cpe2"
        by_mac = repo.active_session_by_mac(s, "02:00:00:00:00:AA")
        assert by_mac is not None and by_mac.id == moved.id
        record_association(s, "user1", "cpe2", None, None, Login(session_timeout=60))
    with db.session() as s:
        (fresh,) = repo.list_sessions(s, active=True)
        assert fresh.acct_session_id != first.acct_session_id
        assert fresh.session_timeout == 60
        assert {x.terminate_cause for x in repo.list_sessions(s, active=False)} == {
            None, "User-Request"}
    with pytest.raises(NotFound), db.session() as s:
        record_association(s, "user1", "no-such-node", None, None, None)


def test_operations_open_and_move_like_the_repository(db: Database) -> None:
    from netfate.db.models import LcmOperation, OpState
    from netfate.errors import Conflict

    with db.session() as s:
        a, b = rec.new_ops(s, [(LcmOperation.INSTANTIATE, "i1", {"node": "cpe1"}),
                               (LcmOperation.MIGRATE, "i2", {})])
    with db.session() as s:
        occ = repo.get_op_occ(s, a)
        assert (occ.operation, occ.operation_state, occ.params) == (
            LcmOperation.INSTANTIATE, OpState.PROCESSING, {"node": "cpe1"})
        pub = rec.set_op_state(s, a, OpState.ROLLING_BACK, {"title": "x"})
        assert pub == {"id": a, "operation": "INSTANTIATE", "vnf_instance_id": "i1",
                       "state": "ROLLING_BACK"}
        rec.set_op_state(s, a, OpState.ROLLED_BACK)
        rec.set_op_state(s, b, OpState.COMPLETED)
    with db.session() as s:
        done = repo.get_op_occ(s, a)
        assert done.operation_state == OpState.ROLLED_BACK and done.error == {"title": "x"}
        assert repo.get_op_occ(s, b).operation_state == OpState.COMPLETED
    with pytest.raises(Conflict, match="final"), db.session() as s:
        rec.set_op_state(s, b, OpState.PROCESSING)
    with pytest.raises(NotFound), db.session() as s:
        rec.set_op_state(s, "no-such-op", OpState.COMPLETED)


def _instance(s: Session, iid: str) -> tuple[object, ...]:
    i = repo.get_instance(s, iid)
    return (i.node_name, i.owner, i.nf_name, i.bundle_sha256, i.flavour, i.config,
            i.desired_state, i.actual_state, i.active_users)


def test_want_drop_complete_like_the_repository(db: Database) -> None:
    """want (Core) leaves the row repo.upsert_instance would, with its errors; drop the
    row set_instance_desired_state would; complete adds the timings and completes."""
    from netfate.db.models import LcmOperation, OpState, Presence
    from netfate.errors import Conflict

    with db.session() as s:
        sha = repo.add_bundle(s, b"fw", name="firewall", version="1",
                              descriptor={"name": "firewall"}).sha256
        repo.update_user(s, "user1", nf_config={"firewall": {"rules": ["a"]}})
        rec.want(s, "cpe1", "user1", "firewall", "i1", None)  # the user's config
        repo.upsert_instance(s, node="cpe2", owner="user1", nf_name="firewall",
                             bundle_sha256=sha, flavour="native", instance_id="i2",
                             config={"rules": ["a"]}, desired_state=Presence.PRESENT)
    with db.session() as s:
        assert _instance(s, "i1")[1:] == _instance(s, "i2")[1:]
        assert _instance(s, "i1")[0] == "cpe1"
        rec.want(s, "cpe1", "user1", "firewall", "i1", {"rules": ["b"]})  # an update
        assert repo.get_instance(s, "i1").config == {"rules": ["b"]}
        assert rec.drop(s, "i1") == "cpe1" and rec.drop(s, "nope") is None
        assert repo.get_instance(s, "i1").desired_state == Presence.ABSENT
        rec.want(s, "cpe1", "user1", "firewall", "i1", None)  # present again
        assert repo.get_instance(s, "i1").desired_state == Presence.PRESENT
    for args, err in [(("cpe2", "user1", "firewall", "i1"), Conflict),  # i1 is on cpe1
                      (("cpe1", "user1", "firewall", "i3"), Conflict),  # user1 has one there
                      (("cpe1", "nobody", "firewall", "i4"), NotFound),
                      (("cpe1", "user1", "no-such-nf", "i5"), NotFound)]:
        with pytest.raises(err), db.session() as s:
            rec.want(s, *args, None)
    with db.session() as s:
        op = rec.new_ops(s, [(LcmOperation.MIGRATE, "i1", {"src": "cpe2"})])[0]
        done = rec.complete(s, op, {"export_ms": 1.0})
        assert done["state"] == "COMPLETED"
        occ = repo.get_op_occ(s, op)
        assert occ.operation_state == OpState.COMPLETED
        assert occ.params == {"src": "cpe2", "timings": {"export_ms": 1.0}}
