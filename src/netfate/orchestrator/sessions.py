"""A user attaches to a node or goes idle: record it, and let the engine plan for it.

One place for what the API routes (associate, idle) and the bus (the controller's idle
reports, fast re-authentication) both do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netfate.db import repo
from netfate.engine import UserAssociated, UserIdle

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from netfate.db.session import Database
    from netfate.orchestrator.coordinator import Coordinator, PlanRun


def _check(s: Session, user: str, node: str | None) -> None:
    """Raises NotFound for an unknown user or node."""
    repo.get_user(s, user)
    if node is not None:
        repo.get_node(s, node)


def _other_on(s: Session, user: str, mac: str) -> str | None:
    """Another user whose active session is on the device with this MAC."""
    cur = repo.active_session_by_mac(s, mac)
    return cur.user_name if cur is not None and cur.user_name != user else None


async def associate(coord: Coordinator, database: Database, user: str, node: str,
                    mac: str | None, ip: str | None, background: bool = True) -> PlanRun:
    await database.run(_check, user, node)
    for _ in range(4):
        # The device changed hands (another user logs in on it): the one before leaves, as
        # when idle, so no switch holds two users on one MAC.
        other = await database.run(_other_on, user, mac) if mac else None
        if other is None:
            break
        await idle(coord, database, other)

    def record(s: Session) -> None:  # after planning: the engine sees where the user was
        cur = repo.active_session(s, user)
        # A new node, or a new MAC (a randomised one): a new session; the old one, and with
        # it what names the old MAC (fast re-authentication by MAC), ends.
        new_mac = (mac is not None and cur is not None and cur.mac is not None
                   and cur.mac.lower() != mac.lower())
        if cur is None or cur.node_name != node or new_mac:
            if cur is not None:
                repo.end_session(s, cur.id)
            repo.add_session(s, user=user, node=node, mac=mac, ip=ip)
        repo.update_user_seen(s, user, access_node=node, mac=mac, ip=ip)

    run = await coord.handle(UserAssociated(user=user, node=node, mac=mac, ip=ip),
                             background=background, record=record)
    if coord.switches is not None and background:
        # While the plan moves their NFs, the user is served by the old ones (if any).
        await coord.switches.apply_anchor(user, node)
    return run


async def idle(coord: Coordinator, database: Database, user: str) -> PlanRun:
    await database.run(_check, user, None)

    def record(s: Session) -> None:
        cur = repo.active_session(s, user)
        if cur is not None:
            repo.end_session(s, cur.id)

    return await coord.handle(UserIdle(user=user), record=record)
