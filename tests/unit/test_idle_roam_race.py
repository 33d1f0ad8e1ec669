"""Issue #16, "Faults, Jepsen's way": a user whose traffic goes quiet just as they roam ends
with their NFs at the new CPE or released, never stranded.

The cause: the controller's idle report was checked against the user's session outside the
user's plan lock, and the UserIdle event named neither the node nor the time of the report.
Two quick moves (cpe1 -> cpe2 -> cpe1, 4 s idle timeout): while the migration to cpe2 runs,
the association back at cpe1 waits for the user's lock, and cpe2's idle flow expires (the
station left it). Its report passes the check (the session *is* at cpe2 then) and waits for
the lock behind the association. The association moves the firewall back to cpe1; then the
idle plan, made on a world where the user is at cpe1, released that firewall and ended the
new session: the firewall never appeared at cpe1 and the user was captive again.

The fix: the report's node and time travel in the event and are checked again when the plan
is made and when it is recorded, under the lock (UserIdle.stale_for).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from netfate import catalogue
from netfate.bundle import inspect_bundle
from netfate.bus.messages import Command, NFActual, Reply
from netfate.db import Database, repo, sqlite_url
from netfate.db.models import Presence
from netfate.engine import Release, UserIdle, plan
from netfate.orchestrator import sessions
from netfate.orchestrator.coordinator import Coordinator
from netfate.orchestrator.hub import EventHub

from .test_engine_support import MAC, dc, inst, node, user, world

IP = "10.0.0.2"


class SlowBus:
    """Agents that run what they are sent; cpe2's answer waits for `release` while `hold`."""

    def __init__(self) -> None:
        self.hold = False
        self.release = asyncio.Event()

    async def command(self, node: str, cmd: Command, timeout: float | None = None) -> Reply:
        if node == "cpe2" and self.hold:
            await self.release.wait()
        if cmd.op == "apply" and cmd.desired is not None:
            return Reply(ok=True, nfs=[
                NFActual(instance_id=i.instance_id, nf_name=i.nf_name, owner=i.owner,
                         state="running", bundle_sha256=i.bundle_sha256)
                for i in cmd.desired.instances])
        return Reply(ok=True, data={"ruleset": "x"})


@pytest.fixture
def db(tmp_path: Any) -> Iterator[Database]:
    d = Database.create(sqlite_url(tmp_path))
    data = catalogue.bundle_bytes("firewall")
    desc, _ = inspect_bundle(data)
    with d.session() as s:
        for n in ("cpe1", "cpe2"):
            repo.upsert_node(s, n, role="cpe", capabilities=[
                "nftables", "conntrack", "bridge", "iproute2", "python3"],
                resources={"mem_total_mb": 1000, "mem_free_mb": 900, "cpu_util": 0.1})
        repo.create_user(s, "user1", "Pw-user1-long-enough", required_nfs=["firewall"])
        repo.add_bundle(s, data, name=desc.name, version=desc.version,
                        descriptor=desc.model_dump(mode="json", by_alias=True))
    yield d
    d.dispose()


def _state(db: Database) -> tuple[dict[str, str], str | None]:
    """The user's wanted instances (id -> node) and the node of their active session."""
    with db.session() as s:
        wanted = {i.id: i.node_name for i in repo.list_instances(s)
                  if i.owner == "user1" and i.desired_state == Presence.PRESENT}
        cur = repo.active_session(s, "user1")
        return wanted, cur.node_name if cur else None


async def _two_quick_moves(db: Database, idle_first: bool) -> None:
    bus = SlowBus()
    coord = Coordinator(db, bus, EventHub(), "http://x")  # type: ignore[arg-type]
    await sessions.associate(coord, db, "user1", "cpe1", MAC, IP, background=False)
    # cpe1 -> cpe2: the migration runs (holding the user's lock) until cpe2 answers.
    bus.hold = True
    await sessions.associate(coord, db, "user1", "cpe2", MAC, IP)
    report_at = time.time()  # cpe2's idle flow expires: the session is at cpe2 now
    idle = asyncio.ensure_future(sessions.idle(coord, db, "user1", "cpe2", report_at))
    back = asyncio.ensure_future(sessions.associate(coord, db, "user1", "cpe1", MAC, IP))
    if not idle_first:  # the association back at cpe1 queues first (the case seen)
        idle, back = back, idle
    await asyncio.sleep(0.05)
    bus.release.set()
    await asyncio.gather(idle, back)
    await coord.drain(10)


def test_idle_report_queued_behind_the_move_back_releases_nothing(db: Database) -> None:
    asyncio.run(_two_quick_moves(db, idle_first=False))
    assert _state(db) == ({"cpe1-user1-firewall": "cpe1"}, "cpe1")


def test_idle_report_planned_before_the_move_back_ends_at_the_new_cpe(db: Database) -> None:
    # The report describes the user when its plan is made (idle at cpe2): released; the
    # association then places a fresh firewall where the user is. Never stranded.
    asyncio.run(_two_quick_moves(db, idle_first=True))
    assert _state(db) == ({"cpe1-user1-firewall": "cpe1"}, "cpe1")


def test_policy_ignores_an_idle_report_from_a_node_the_user_left() -> None:
    snap = world([node("cpe1"), node("cpe2"), dc()],
                 [user("alice", at="cpe1", last_seen=900.0)], [inst("cpe1", "alice", "firewall")])
    stale = plan(snap, UserIdle(user="alice", node="cpe2", at=950.0))
    assert stale.is_empty and "stale" in stale.reasons[0]
    # made before the user was last seen (away and back at the same node)
    earlier = plan(snap, UserIdle(user="alice", node="cpe1", at=850.0))
    assert earlier.is_empty and "stale" in earlier.reasons[0]
    fresh = plan(snap, UserIdle(user="alice", node="cpe1", at=950.0))
    assert [i.instance_id for i in fresh.of(Release)] == ["cpe1-alice-firewall"]
    # an operator's idle request names neither: as before
    assert plan(snap, UserIdle(user="alice")).of(Release)
