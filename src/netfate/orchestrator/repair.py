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

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.bus.messages import NodeEvent
from netfate.db.models import (
    Presence,
    SessionState,
    SteeringRule,
    User,
    UserSession,
    VnfInstance,
)
from netfate.engine import UserAssociated
from netfate.errors import NetfateError
from netfate.orchestrator import reauth, sessions
from netfate.orchestrator.plan_locks import user_key
from netfate.orchestrator.reconcile import Repair, UserRecord, user_repairs
from netfate.owners import is_operator_owned

if TYPE_CHECKING:
    from netfate.orchestrator.service import Orchestrator

log = logging.getLogger("netfate.orchestrator.repair")

RETRY_S = 15.0  # a user repaired is not repaired again before this (a repair that can't help)
# The same repair needed again after it ran did not help (an NF that refuses the user's
# configuration, a node that keeps failing it): each time it waits twice as long, up to this,
# as Kubernetes backs off a container that keeps failing (CrashLoopBackOff: 10 s doubling to
# 5 min). A new login, or an edit of their required NFs or classifiers, plans them at once,
# whatever the back-off.
MAX_RETRY_S = 300.0


# Core statements (plain rows, no ORM objects): this read covers every user every
# reconciliation, and the ended sessions grow with every roam.
_Q_ACTIVE = (sa.select(UserSession.user_name, UserSession.node_name, UserSession.mac,
                       UserSession.ip, UserSession.nfs_override)
             .where(UserSession.state == SessionState.ACTIVE)
             .order_by(UserSession.started_at, UserSession.id))
_Q_ENDED = (sa.select(UserSession.user_name, sa.func.max(UserSession.ended_at))
            .where(UserSession.state == SessionState.ENDED)
            .group_by(UserSession.user_name))
_Q_INSTANCES = (sa.select(VnfInstance.owner, VnfInstance.id, VnfInstance.node_name,
                          VnfInstance.nf_name, VnfInstance.created_at,
                          VnfInstance.active_users)
                .where(VnfInstance.desired_state == Presence.PRESENT)
                .order_by(VnfInstance.id))
_Q_STEERED = (sa.select(SteeringRule.user_name, SteeringRule.node_name, SteeringRule.chain)
              .where(SteeringRule.desired.is_(True))
              .order_by(SteeringRule.node_name, SteeringRule.user_name))
_Q_USERS = (sa.select(User.name, User.required_nfs, User.mac, User.ip, User.access_node,
                      User.last_seen).order_by(User.name))


def user_records(s: Session) -> list[UserRecord]:
    """Every user with a session or NFs wanted, as `user_repairs` reads them."""
    conn = s.connection()
    active = {u: (node, mac, ip, o) for u, node, mac, ip, o in conn.execute(_Q_ACTIVE)}
    ended: dict[str, float] = {u: float(t or 0.0) for u, t in conn.execute(_Q_ENDED)}
    insts: dict[str, dict[str, tuple[str, str]]] = {}
    created: dict[str, float] = {}
    for owner, iid, node, nf, at, users in conn.execute(_Q_INSTANCES):
        if is_operator_owned(owner):
            continue  # a probe in a user's path is not theirs: their repairs leave it alone
        insts.setdefault(owner, {})[iid] = (node, nf)
        created[iid] = at
        for other in users or ():  # a shared NF's other users use it too
            insts.setdefault(other, {}).setdefault(iid, (node, nf))
    steered: dict[str, dict[str, tuple[str, ...]]] = {}
    for user, node, chain in conn.execute(_Q_STEERED):
        mine = insts.get(user, {})
        steered.setdefault(user, {})[node] = tuple(
            mine[iid][1] if iid in mine else "?" for iid in chain or ())
    out = []
    for name, required, mac, ip, access_node, last_seen in conn.execute(_Q_USERS):
        cur = active.get(name)
        if cur is None and name not in insts:
            continue
        out.append(UserRecord(
            # a CoA's NFs for the login in place of the stored ones (RFC 5176)
            user=name, required_nfs=tuple((cur[3] if cur and cur[3] is not None
                                           else required) or ()),
            session_node=cur[0] if cur else None,
            mac=(cur[1] if cur else None) or mac, ip=(cur[2] if cur else None) or ip,
            access_node=access_node, steered=steered.get(name, {}),
            instances={k: v[0] for k, v in insts.get(name, {}).items()},
            last_seen=last_seen,
            left_over=tuple(k for k in insts.get(name, {})
                            if created[k] < ended.get(name, 0.0))))
    return out


def session_of(s: Session, user: str) -> tuple[str, str | None, str | None] | None:
    """The user's active session as `user_records` reads it: (node, MAC, IP), the user's
    stored MAC and IP where the session has none; None without one."""
    row = s.execute(sa.select(UserSession.node_name, UserSession.mac, UserSession.ip)
                    .where(UserSession.state == SessionState.ACTIVE,
                           UserSession.user_name == user)
                    .order_by(UserSession.started_at.desc(), UserSession.id.desc())
                    .limit(1)).first()
    if row is None:
        return None
    u = s.execute(sa.select(User.mac, User.ip).where(User.name == user)).first()
    return (row[0], row[1] or (u[0] if u else None), row[2] or (u[1] if u else None))


def _same_repair(r: Repair) -> tuple[str, str | None, str]:
    """What makes two repairs of a user the same one, for the back-off."""
    return (r.kind, r.node, r.why)


class Repairs:
    """The orchestrator's user repairs, with what they remember between runs."""

    def __init__(self, orch: Orchestrator) -> None:
        self.orch = orch
        self.absent_since: dict[str, float] = {}
        self._last: dict[str, float] = {}  # user -> when last repaired
        # user -> (the repair last made for them, how many times in a row it was needed)
        self._again: dict[str, tuple[tuple[str, str | None, str], int]] = {}

    def wait_s(self, r: Repair) -> float:
        """How long after the user's last repair ``r`` may be made (s): RETRY_S, doubled for
        each further time in a row the same repair (kind, node, why) was made and needed
        again, at most MAX_RETRY_S: repairs 15, 30, 60, ... 300 s apart."""
        last = self._again.get(r.user)
        n = last[1] if last is not None and last[0] == _same_repair(r) else 1
        return float(min(RETRY_S * 2 ** min(max(n - 1, 0), 16), MAX_RETRY_S))

    async def run(self, now: float | None = None) -> list[Repair]:
        """One pass: the repairs made (those skipped for a plan in flight, or repaired
        less than RETRY_S ago, are left for a later pass)."""
        orch = self.orch
        assert orch.db is not None and orch.coordinator is not None
        t = time.time() if now is None else now
        records = await orch.db.read(user_records)
        # Only what agents reported since this start (the ports read back from the database
        # at start may be stale: a station roamed while the orchestrator was down).
        stations = {n: dict(p.stations) for n, p in (orch.switches.ports.items()
                                                     if orch.switches else [])
                    if p.access and n in orch.ports_reported}
        todo = user_repairs(records, stations, self.absent_since, t,
                            float(orch.settings.user_idle_timeout))
        for gone in set(self._again) - {r.user for r in todo}:
            del self._again[gone]  # nothing to repair any more: the next failure starts anew
        done = []
        for r in todo:
            if orch.coordinator.busy(r.user) or \
                    t - self._last.get(r.user, -MAX_RETRY_S) < self.wait_s(r):
                continue
            if await self._busy_elsewhere(r.user):
                continue
            self._last[r.user] = t
            sig = _same_repair(r)
            before = self._again.get(r.user)
            self._again[r.user] = (sig, before[1] + 1 if before and before[0] == sig else 1)
            log.info("repairing %s (%s): %s", r.user, r.kind, r.why)
            orch.hub.publish("repair", {"user": r.user, "kind": r.kind, "node": r.node,
                                        "why": r.why})
            try:
                await self._replay(r, t)
            except NetfateError as exc:
                log.warning("repairing %s (%s) failed: %s", r.user, r.kind, exc)
            done.append(r)
        return done

    async def _busy_elsewhere(self, user: str) -> bool:
        """With replicas: another replica holds the user's plan lock (a plan of theirs in
        flight there, whose steps would look like something to repair)."""
        shared = self.orch.coordinator.locks.shared if self.orch.coordinator else None
        if shared is None:
            return False
        if not await shared.try_lock(user_key(user)):
            return True
        await shared.unlock(user_key(user))
        return False

    async def _replay(self, r: Repair, t: float) -> None:
        orch = self.orch
        assert orch.db is not None and orch.coordinator is not None
        if r.kind == "roamed" and r.node is not None and r.mac:
            await reauth.on_associated(orch, NodeEvent(
                node=r.node, ts=t, kind="client.associated", data={"mac": r.mac}))
        elif r.kind == "converge" and r.node is not None:
            # Planned as a fresh association at the same node, but not recorded as one (it
            # is not a sighting of the user: a pending idle report stays valid).
            cur = await orch.db.read(session_of, r.user)  # this user's, not every user's
            if cur is not None and cur[0] == r.node:
                await orch.coordinator.handle(UserAssociated(
                    user=r.user, node=r.node, mac=cur[1], ip=cur[2]))
        elif r.kind == "idle":
            # As the controller's report would: stale (ignored) if the user associates
            # anywhere after this read.
            await sessions.idle(orch.coordinator, orch.db, r.user, r.node, t)
