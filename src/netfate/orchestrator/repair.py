"""Level-triggered users: read what is recorded (sessions, steering, NFs wanted) and what the
agents report (stations per access port), let `reconcile.user_repairs` name what was lost,
and replay it, one user at a time, never over a plan of that user in flight.

Run periodically by the orchestrator's reconcile loop, and so also after any restart or
reconnect: an event that happened while a process was down is acted upon once the
orchestrator sees the world again (Kubernetes-style level triggering rather than edges).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from netfate.bus.messages import NodeEvent
from netfate.db import repo
from netfate.db.models import Presence
from netfate.engine import UserAssociated
from netfate.errors import NetfateError
from netfate.orchestrator import reauth, sessions
from netfate.orchestrator.reconcile import Repair, UserRecord, user_repairs

if TYPE_CHECKING:
    from netfate.orchestrator.service import Orchestrator

log = logging.getLogger("netfate.orchestrator.repair")

RETRY_S = 15.0  # a user repaired is not repaired again before this (a repair that can't help)


def user_records(s: Session) -> list[UserRecord]:
    """Every user with a session or NFs wanted, as `user_repairs` reads them."""
    active = {x.user_name: x for x in repo.list_sessions(s, active=True)}
    ended: dict[str, float] = {}
    for x in repo.list_sessions(s, active=False):
        ended[x.user_name] = max(ended.get(x.user_name, 0.0), x.ended_at or 0.0)
    insts: dict[str, dict[str, tuple[str, str]]] = {}
    created: dict[str, float] = {}
    for i in repo.list_instances(s, desired_state=Presence.PRESENT):
        insts.setdefault(i.owner, {})[i.id] = (i.node_name, i.nf_name)
        created[i.id] = i.created_at
        for other in i.active_users or ():  # a shared NF's other users use it too
            insts.setdefault(other, {}).setdefault(i.id, (i.node_name, i.nf_name))
    steered: dict[str, dict[str, tuple[str, ...]]] = {}
    for r in repo.list_steering(s, desired=True):
        mine = insts.get(r.user_name, {})
        steered.setdefault(r.user_name, {})[r.node_name] = tuple(
            mine[iid][1] if iid in mine else "?" for iid in r.chain)
    out = []
    for u in repo.list_users(s):
        cur = active.get(u.name)
        if cur is None and u.name not in insts:
            continue
        out.append(UserRecord(
            user=u.name, required_nfs=tuple(u.required_nfs or ()),
            session_node=cur.node_name if cur else None,
            mac=(cur.mac if cur else None) or u.mac, ip=(cur.ip if cur else None) or u.ip,
            access_node=u.access_node, steered=steered.get(u.name, {}),
            instances={k: v[0] for k, v in insts.get(u.name, {}).items()},
            last_seen=u.last_seen,
            left_over=tuple(k for k in insts.get(u.name, {})
                            if created[k] < ended.get(u.name, 0.0))))
    return out


class Repairs:
    """The orchestrator's user repairs, with what they remember between runs."""

    def __init__(self, orch: Orchestrator) -> None:
        self.orch = orch
        self.absent_since: dict[str, float] = {}
        self._last: dict[str, float] = {}  # user -> when last repaired

    async def run(self, now: float | None = None) -> list[Repair]:
        """One pass: the repairs made (those skipped for a plan in flight, or repaired
        less than RETRY_S ago, are left for a later pass)."""
        orch = self.orch
        assert orch.db is not None and orch.coordinator is not None
        t = time.time() if now is None else now
        records = await orch.db.run(user_records)
        # Only what agents reported since this start (the ports read back from the database
        # at start may be stale: a station roamed while the orchestrator was down).
        stations = {n: dict(p.stations) for n, p in (orch.switches.ports.items()
                                                     if orch.switches else [])
                    if p.access and n in orch.ports_reported}
        todo = user_repairs(records, stations, self.absent_since, t,
                            float(orch.settings.user_idle_timeout))
        done = []
        for r in todo:
            if orch.coordinator.busy(r.user) or t - self._last.get(r.user, -RETRY_S) < RETRY_S:
                continue
            self._last[r.user] = t
            log.info("repairing %s (%s): %s", r.user, r.kind, r.why)
            orch.hub.publish("repair", {"user": r.user, "kind": r.kind, "node": r.node,
                                        "why": r.why})
            try:
                await self._replay(r, t)
            except NetfateError as exc:
                log.warning("repairing %s (%s) failed: %s", r.user, r.kind, exc)
            done.append(r)
        return done

    async def _replay(self, r: Repair, t: float) -> None:
        orch = self.orch
        assert orch.db is not None and orch.coordinator is not None
        if r.kind == "roamed" and r.node is not None and r.mac:
            await reauth.on_associated(orch, NodeEvent(
                node=r.node, ts=t, kind="client.associated", data={"mac": r.mac}))
        elif r.kind == "converge" and r.node is not None:
            # Planned as a fresh association at the same node, but not recorded as one (it
            # is not a sighting of the user: a pending idle report stays valid).
            rec = next((u for u in await orch.db.run(user_records) if u.user == r.user), None)
            if rec is not None and rec.session_node == r.node:
                await orch.coordinator.handle(UserAssociated(
                    user=r.user, node=r.node, mac=rec.mac, ip=rec.ip))
        elif r.kind == "idle":
            # As the controller's report would: stale (ignored) if the user associates
            # anywhere after this read.
            await sessions.idle(orch.coordinator, orch.db, r.user, r.node, t)
