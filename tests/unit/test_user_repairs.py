"""Level-triggered users (issue #16): what the records and the agents' reports call for when
an event was lost while a process was down. Pure: reconcile.user_repairs."""

from __future__ import annotations

from pathlib import Path

from netfate.orchestrator.reconcile import UserRecord, user_repairs

MAC = "02:00:00:00:00:01"
FW = {"cpe1-u1-firewall": "cpe1"}


def rec(**kw: object) -> UserRecord:
    base: dict[str, object] = {
        "user": "u1", "required_nfs": ("firewall",), "session_node": "cpe1", "mac": MAC,
        "ip": "10.0.0.5", "access_node": "cpe1", "steered": {"cpe1": ("firewall",)},
        "instances": FW}
    base.update(kw)
    return UserRecord(**base)  # type: ignore[arg-type]


def kinds(users: list[UserRecord], stations: dict[str, dict[str, str]],
          absent: dict[str, float] | None = None, now: float = 100.0,
          idle_after: float = 10.0) -> list[tuple[str, str | None]]:
    found = user_repairs(users, stations, {} if absent is None else absent, now, idle_after)
    return [(r.kind, r.node) for r in found]


AT_CPE1 = {"cpe1": {MAC: "p1"}, "cpe2": {}}


def test_a_converged_user_needs_nothing() -> None:
    assert kinds([rec()], AT_CPE1) == []


def test_an_association_lost_while_the_bus_was_down_is_replayed_where_the_station_is() -> None:
    assert kinds([rec()], {"cpe1": {}, "cpe2": {MAC.upper(): "p2"}}) == [("roamed", "cpe2")]
    # on both for a moment (a move in progress): not a roam
    assert kinds([rec()], {"cpe1": {MAC: "p1"}, "cpe2": {MAC: "p2"}}) == []


def test_a_plan_lost_with_the_orchestrator_is_planned_again() -> None:
    # the session was recorded at cpe2, the orchestrator died before the plan ran
    assert kinds([rec(session_node="cpe2")], {"cpe2": {MAC: "p"}}) == [("converge", "cpe2")]
    # steered at the old node too
    both = rec(steered={"cpe1": ("firewall",), "cpe2": ("firewall",)})
    assert kinds([both], AT_CPE1) == [("converge", "cpe1")]
    # NFs missing
    assert kinds([rec(instances={})], AT_CPE1) == [("converge", "cpe1")]


def test_a_chain_edited_while_logged_in_is_applied() -> None:
    edited = rec(required_nfs=("firewall", "rate-limiter"))
    assert kinds([edited], AT_CPE1) == [("converge", "cpe1")]


def test_a_station_on_no_access_port_for_the_idle_timeout_is_idle() -> None:
    absent: dict[str, float] = {}
    gone = {"cpe1": {}, "cpe2": {}}
    assert kinds([rec()], gone, absent, now=100.0) == []
    assert absent == {"u1": 100.0}
    assert kinds([rec()], gone, absent, now=109.0) == []
    assert kinds([rec()], gone, absent, now=110.0) == [("idle", "cpe1")]
    assert kinds([rec()], gone, absent, now=110.0, idle_after=0) == []  # never
    # back: forgotten
    assert kinds([rec()], AT_CPE1, absent, now=111.0) == [] and absent == {}
    # its node has not reported (agent down): no conclusion
    assert kinds([rec()], {"cpe2": {}}, absent, now=200.0) == [] and absent == {}


def test_nfs_left_by_a_session_that_ended_are_released() -> None:
    left = rec(session_node=None, left_over=("cpe1-u1-firewall",))
    assert kinds([left], AT_CPE1) == [("idle", "cpe1")]
    # placed by an operator for a user without a session: theirs to keep
    assert kinds([rec(session_node=None)], AT_CPE1) == []


def test_a_converge_repair_reads_the_one_users_session_as_every_users_read_does(
        tmp_path: Path) -> None:
    """`session_of` (one user, for a converge repair) agrees with `user_records` (every
    user): the latest active session, the user's stored MAC and IP where it has none."""
    from netfate.db import Database, repo, sqlite_url
    from netfate.orchestrator.repair import session_of, user_records

    db = Database.create(sqlite_url(tmp_path / "state"))
    try:
        with db.session() as s:
            for n in ("cpe1", "cpe2"):
                repo.upsert_node(s, n, role="cpe")
            for u in ("user1", "user2"):
                repo.create_user(s, u, "secret1")
            repo.add_session(s, user="user1", node="cpe1", mac="02:aa::1", ip="10.0.0.2",
                             now=1.0)
            repo.add_session(s, user="user1", node="cpe2", now=2.0)  # no MAC or IP of its own
        with db.session() as s:
            assert session_of(s, "user1") == ("cpe2", "02:aa::1", "10.0.0.2")
            assert session_of(s, "user2") is None
            rec = next(r for r in user_records(s) if r.user == "user1")
            assert (rec.session_node, rec.mac, rec.ip) == session_of(s, "user1")
    finally:
        db.dispose()
