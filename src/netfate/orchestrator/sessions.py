"""A user attaches to a node or goes idle: record it, and let the engine plan for it.

One place for what the API routes (associate, idle, logout), the bus (the controller's idle
reports, fast re-authentication) and RADIUS (Disconnect-Request, Session-Timeout) all do.

A login (the portal's, after an Access-Accept) starts a new accounting session: a new
Acct-Session-Id, with the Accept's Session-Timeout and Idle-Timeout. Any other association
(a roam: fast re-authentication at another node) continues the user's login: the new
session row keeps its Acct-Session-Id, start and limits, so RADIUS accounting sees one
session from login to logout (see orchestrator/accounting.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from netfate.db import repo
from netfate.db.models import Node, NodeRole, SessionState, User, UserSession
from netfate.db.repo import check
from netfate.db.repo.sessions import new_acct_session_id
from netfate.engine import UserAssociated, UserIdle
from netfate.errors import InvalidInput, NetfateError, NotFound
from netfate.orchestrator.access_subnet import AccessSubnet, check_station
from netfate.owners import is_operator_owned

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from netfate.bus.messages import UserIdleReport
    from netfate.db.session import Database
    from netfate.orchestrator.coordinator import Coordinator, PlanRun
    from netfate.orchestrator.service import Orchestrator

# Acct-Terminate-Cause names (RFC 2866 5.10) for the ways a session ends here.
USER_REQUEST = "User-Request"        # logout, or a new login replacing this one
IDLE_TIMEOUT = "Idle-Timeout"        # no packets for the idle period
SESSION_TIMEOUT = "Session-Timeout"  # the Access-Accept's Session-Timeout ran out
ADMIN_RESET = "Admin-Reset"          # a Disconnect-Request (RFC 5176) or an operator
PORT_PREEMPTED = "Port-Preempted"    # another user logged in on the device or its address
# What each cause makes of the release's reason ("user1 logged out").
_WHY = {USER_REQUEST: "logged out", IDLE_TIMEOUT: "idle", SESSION_TIMEOUT: "session timed out",
        ADMIN_RESET: "disconnected (Admin-Reset)",
        PORT_PREEMPTED: "replaced on their device by another user's login"}

log = logging.getLogger("netfate.orchestrator")


@dataclass(frozen=True)
class Login:
    """A fresh login's terms, from its Access-Accept (seconds; None: no limit)."""

    session_timeout: int | None = None
    idle_timeout: int | None = None


_Q_USER = sa.select(User.name).where(User.name == sa.bindparam("name"))
_Q_NODE = sa.select(Node.role).where(Node.name == sa.bindparam("name"))


def _check(s: Session, user: str, node: str | None) -> None:
    """Raises NotFound for an unknown user or node, InvalidInput for a data-centre node
    (users attach at the edge: a CPE or a PE; the DC only hosts NFs). Core reads: every
    event asks."""
    conn = s.connection()
    # (the operator's owner row, netfate.owners, is no user: it never associates)
    if "\x00" in user or is_operator_owned(user) \
            or conn.execute(_Q_USER, {"name": user}).first() is None:
        raise NotFound(f"user {user!r} does not exist")
    if node is None:
        return
    role = None if "\x00" in node else conn.execute(_Q_NODE, {"name": node}).scalar()
    if role is None:
        raise NotFound(f"node {node!r} does not exist")
    if role == NodeRole.DC:
        raise InvalidInput(f"node {node!r} is a data-centre node: users attach at an access "
                           "node (a CPE or a PE)")


_Q_CURRENT = (sa.select(UserSession.id, UserSession.node_name, UserSession.mac,
                        UserSession.acct_session_id, UserSession.login_at,
                        UserSession.session_timeout, UserSession.idle_timeout,
                        UserSession.nfs_override)
              .where(UserSession.user_name == sa.bindparam("user"),
                     UserSession.state == SessionState.ACTIVE)
              .order_by(UserSession.started_at.desc()).limit(1))
def acct_session_of(s: Session, user: str) -> str | None:
    """The Acct-Session-Id of the user's active session (repo.active_session's), read as
    one Core row: every association's answer carries it."""
    cur = s.connection().execute(_Q_CURRENT, {"user": user}).first()
    return cur.acct_session_id if cur is not None else None


_END_ACTIVE = (sa.update(UserSession)
               .where(UserSession.user_name == sa.bindparam("user"),
                      UserSession.state == SessionState.ACTIVE)
               .values(state=SessionState.ENDED, ended_at=sa.bindparam("t"),
                       terminate_cause=sa.bindparam("cause")))
_NEW_SESSION = sa.insert(UserSession)


def record_association(s: Session, user: str, node: str, mac: str | None, ip: str | None,
                       login: Login | None) -> None:
    """Write an association: a login replaces the user's session (even at the same node)
    with a new accounting session; otherwise a move to another node carries the login on.

    A few Core statements in the caller's transaction (no ORM objects, no savepoints: this
    runs for every login and roam). Raises NotFound when the user or node is gone (deleted
    since the caller checked), and changes nothing then."""
    check.text("mac", mac, optional=True)
    check.text("ip", ip, optional=True)
    conn = s.connection()
    t = time.time()
    cur = conn.execute(_Q_CURRENT, {"user": user}).first()
    carry: dict[str, object] | None = None
    if login is not None:
        cause: str | None = USER_REQUEST
        carry = {"acct_session_id": new_acct_session_id(), "login_at": t,
                 "session_timeout": login.session_timeout, "idle_timeout": login.idle_timeout}
    elif cur is None:
        cause = None
        carry = {"acct_session_id": new_acct_session_id(), "login_at": t}
    elif cur.node_name != node or (mac is not None and cur.mac is not None
                                   and cur.mac.lower() != mac.lower()):
        # A new node, or a new MAC (a randomised one): a new session row, so what names the
        # old MAC (fast re-authentication by MAC) ends; the login and its accounting go on
        # (no cause: the login goes on at the new node).
        cause = None
        carry = {"acct_session_id": cur.acct_session_id, "login_at": cur.login_at,
                 "session_timeout": cur.session_timeout, "idle_timeout": cur.idle_timeout,
                 "nfs_override": cur.nfs_override}  # a CoA's NFs hold for the whole login
    seen = {"last_seen": t, "access_node": node,
            **({"mac": mac} if mac is not None else {}), **({"ip": ip} if ip is not None else {})}
    try:
        if carry is not None:
            if cur is not None:
                conn.execute(_END_ACTIVE, {"user": user, "t": t, "cause": cause})
            conn.execute(_NEW_SESSION, {
                "id": str(uuid.uuid4()), "user_name": user, "node_name": node,
                "mac": mac.lower() if mac is not None else None,
                "ip": ip, "started_at": t, "state": SessionState.ACTIVE, **carry})
        done = conn.execute(sa.update(User).where(User.name == user).values(**seen))
    except sa.exc.IntegrityError as exc:  # the node is gone
        raise NotFound(f"associating {user} at {node}: no such user or node") from exc
    if done.rowcount != 1:
        raise NotFound(f"associating {user} at {node}: no such user")


_Q_ON_MAC = (sa.select(UserSession.user_name)
             .where(UserSession.mac == sa.bindparam("mac"),  # stored lower case
                    UserSession.state == SessionState.ACTIVE)
             .order_by(UserSession.started_at.desc()).limit(1))


_Q_ON_IP = (sa.select(UserSession.user_name)
            .where(UserSession.ip == sa.bindparam("ip"),
                   UserSession.node_name == sa.bindparam("node"),
                   UserSession.user_name != sa.bindparam("user"),
                   UserSession.state == SessionState.ACTIVE)
            .order_by(UserSession.started_at.desc()).limit(1))


def _other_on(s: Session, user: str, node: str, mac: str | None, ip: str | None
              ) -> str | None:
    """Another user whose active session is on the device with this MAC (the user of
    repo.active_session_by_mac, read as one column: every association asks), or else on
    this address at this node (a lease that expired and went to another device: two users
    on one address would leave the switch unable to tell whose its traffic is)."""
    conn = s.connection()
    if mac:
        on = conn.execute(_Q_ON_MAC, {"mac": mac.lower()}).scalar()
        if on is not None and on != user:
            return str(on)
    if ip:
        on = conn.execute(_Q_ON_IP, {"ip": ip, "node": node, "user": user}).scalar()
        if on is not None:
            return str(on)
    return None


def _check_and_other_on(s: Session, user: str, node: str, mac: str | None, ip: str | None,
                        services_ip: str | None = None, access: AccessSubnet | None = None
                        ) -> str | None:
    """_check, the device's addresses at the node (access_subnet.check_station), then
    _other_on."""
    _check(s, user, node)
    check_station(node, mac, ip, services_ip, access)
    return _other_on(s, user, node, mac, ip)


def _services_ip(coord: Coordinator, node: str) -> str | None:
    """The node's access services address, as its agent last reported its switch."""
    ports = coord.switches.ports.get(node) if coord.switches is not None else None
    return ports.services.ip if ports is not None and ports.services is not None else None


async def associate(coord: Coordinator, database: Database, user: str, node: str,
                    mac: str | None, ip: str | None, background: bool = True,
                    login: Login | None = None, laps: dict[str, float] | None = None
                    ) -> PlanRun:
    """``login`` given: a new login (see the module's docstring); None: a roam or a repeated
    association, which keeps the user's login and its accounting session. ``laps`` is given
    the time (ms) to plan and record the association ("plan_ms") and then to anchor the
    user's traffic ("anchor_rounds_ms"). InvalidInput, before anything changes, for an
    address no device at the node can have (access_subnet.check_station: outside its
    access subnet, the node's own services address...), whichever path associates."""
    t0 = time.perf_counter()
    # The checks and the first look for another user on the device, in one transaction.
    other = await database.read(_check_and_other_on, user, node, mac, ip,
                                _services_ip(coord, node), coord.access_subnet)
    for k in range(4):
        # The device or the address changed hands (another user logs in on it): the one
        # before leaves, as when idle, so no switch holds two users on one MAC or address.
        if k:
            other = await database.read(_other_on, user, node, mac, ip)
        if other is None:
            break
        await end(coord, database, other, PORT_PREEMPTED)

    def record(s: Session) -> None:  # after planning: the engine sees where the user was
        record_association(s, user, node, mac, ip, login)

    anchored = asyncio.Event()
    run = await coord.handle(UserAssociated(user=user, node=node, mac=mac, ip=ip),
                             background=background, record=record,
                             after=anchored if background else None)
    t1 = time.perf_counter()
    try:
        if coord.switches is not None and background:
            # While the plan moves their NFs, the user is served by the old ones (if any).
            # The plan starts moving them once this is done: running both at once made the
            # anchor's rounds 72 ms at p50 instead of 42 (bench handover, 2026-12-04).
            await coord.switches.apply_anchor(user, node)
    finally:
        anchored.set()
    if laps is not None:
        laps["plan_ms"] = round((t1 - t0) * 1000, 2)
        laps["anchor_rounds_ms"] = round((time.perf_counter() - t1) * 1000, 2)
    return run


async def replan(coord: Coordinator, database: Database, user: str) -> PlanRun | None:
    """The user's requirements were edited (required NFs, classifiers, NF configuration): if
    they have an active session, plan it again at once where they are (None: no session,
    their next login plans it). The engine converges the user as for a fresh association
    there, make before break: an added NF is placed before the new steering, and a removed
    one released only after it (converge_user's order), so established connections go on.
    Not recorded as a sighting of the user (a pending idle report stays valid)."""

    def where(s: Session) -> tuple[str, str | None, str | None] | None:
        cur = repo.active_session(s, user)
        return None if cur is None else (cur.node_name, cur.mac, cur.ip)

    at = await database.run(where)
    if at is None:
        return None
    node, mac, ip = at
    return await coord.handle(UserAssociated(user=user, node=node, mac=mac, ip=ip))


async def end(coord: Coordinator, database: Database, user: str, cause: str,
              acct_session_id: str | None = None, node: str | None = None,
              at: float | None = None) -> PlanRun:
    """End the user's session and release their NFs (the engine's idle release: their
    device is captive again). ``cause``: an Acct-Terminate-Cause name. With
    ``acct_session_id``, only if the active session is still that login's (a timeout or a
    Disconnect must not end a newer login): NotFound otherwise. ``node`` and ``at`` (unix
    time) say where and when an idle report saw the user idle: the report is checked again
    under the user's plan lock (UserIdle.stale_for), so one that raced a roam ends nothing
    and releases nothing."""
    await database.read(_check, user, None)
    event = UserIdle(user=user, node=node, at=at, why=_WHY.get(cause, "idle"))

    def current(s: Session) -> str | None:
        cur = repo.active_session(s, user)
        return cur.acct_session_id if cur is not None else None

    if acct_session_id is not None and await database.read(current) != acct_session_id:
        raise NotFound(f"{user} has no active session {acct_session_id}")

    def record(s: Session) -> None:
        u = repo.get_user(s, user)
        if event.stale_for(u.access_node, u.last_seen) is not None:
            return  # the user associated meanwhile: that session stands
        cur = repo.active_session(s, user)
        if cur is not None and acct_session_id in (None, cur.acct_session_id):
            repo.end_session(s, cur.id, cause=cause)

    return await coord.handle(event, record=record)


async def idle(coord: Coordinator, database: Database, user: str, node: str | None = None,
               at: float | None = None) -> PlanRun:
    """The user went idle (at ``node``, seen at unix time ``at``, when a report says so)."""
    return await end(coord, database, user, IDLE_TIMEOUT, node=node, at=at)


async def idle_reported(orch: Orchestrator, rep: UserIdleReport) -> None:
    """The controller saw no packets from or to the user at ``rep.node`` for the idle
    period: release them there, unless the report is stale (they moved on, or are already
    released; checked again under their plan lock, as a roam may be recorded before)."""
    assert orch.coordinator is not None and orch.db is not None
    at = await orch.db.run(lambda s: getattr(repo.active_session(s, rep.user),
                                             "node_name", None))
    if at != rep.node:
        return
    log.info("user %s idle at %s", rep.user, rep.node)
    orch.hub.publish("user_idle", rep.model_dump(mode="json"))
    with contextlib.suppress(NetfateError):
        await idle(orch.coordinator, orch.db, rep.user, rep.node, rep.ts)
