"""User sessions: a user attached to an access node, from login to logout or release.

A user has at most one active session: a login at another node ends the previous one (the
user moved). Sessions keep the user's access node, MAC and IP in Table I up to date.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.db.models import Node, SessionState, User, UserSession
from netfate.db.repo import check
from netfate.db.repo._common import get_or_404, guard, set_given, stamp, where_given
from netfate.errors import NotFound
from netfate.owners import is_operator_owned


def active_session(session: Session, user: str) -> UserSession | None:
    return session.scalar(
        sa.select(UserSession)
        .where(UserSession.user_name == user, UserSession.state == SessionState.ACTIVE)
        .order_by(UserSession.started_at.desc())
        .limit(1)
    )


def active_session_by_mac(session: Session, mac: str) -> UserSession | None:
    """The most recent active session of the device with this MAC."""
    return session.scalar(
        sa.select(UserSession)
        .where(UserSession.mac == mac.lower(),  # stored lower case (migration 0006)
               UserSession.state == SessionState.ACTIVE)
        .order_by(UserSession.started_at.desc())
        .limit(1)
    )


def add_session(
    session: Session,
    *,
    user: str,
    node: str,
    mac: str | None = None,
    ip: str | None = None,
    now: float | None = None,
    acct_session_id: str | None = None,
    login_at: float | None = None,
    session_timeout: int | None = None,
    idle_timeout: int | None = None,
) -> UserSession:
    """Start a session of ``user`` at ``node``, ending any other active one of theirs.
    ``acct_session_id`` names the login it belongs to (RADIUS Acct-Session-Id; a new one if
    not given), which began at ``login_at`` (default: now) with the Access-Accept's
    ``session_timeout`` and ``idle_timeout`` (seconds; None: none)."""
    if is_operator_owned(user):  # the operator's owner row logs in nowhere
        raise NotFound(f"user {user!r} does not exist")
    u = get_or_404(session, User, user, "user")
    get_or_404(session, Node, node, "node")
    check.text("mac", mac, optional=True)
    check.text("ip", ip, optional=True)
    t = stamp(now)
    previous = session.scalars(
        sa.select(UserSession).where(
            UserSession.user_name == user, UserSession.state == SessionState.ACTIVE
        )
    ).all()
    s = UserSession(
        id=str(uuid.uuid4()), user_name=user, node_name=node,
        mac=mac.lower() if mac is not None else None, ip=ip,
        started_at=t, state=SessionState.ACTIVE,
        acct_session_id=acct_session_id or new_acct_session_id(),
        login_at=login_at if login_at is not None else t,
        session_timeout=session_timeout, idle_timeout=idle_timeout,
    )
    with guard(session, f"session of {user!r} at {node!r}"):
        for p in previous:
            p.state = SessionState.ENDED
            p.ended_at = t
        session.add(s)
        u.access_node = node
        u.last_seen = t
        set_given(u, mac=mac, ip=ip)
    return s


def new_acct_session_id() -> str:
    """A fresh Acct-Session-Id (RFC 2866 5.5: unique per NAS; 32 hex digits)."""
    return uuid.uuid4().hex


def end_session(session: Session, session_id: str, *, now: float | None = None,
                cause: str | None = None) -> UserSession:
    """End a session (idempotent). The user is left with no access node if it was this one.
    ``cause``: why, as an Acct-Terminate-Cause name (RFC 2866 5.10)."""
    s = get_or_404(session, UserSession, session_id, "session")
    if s.state == SessionState.ENDED:
        return s
    u = get_or_404(session, User, s.user_name, "user")
    with guard(session, f"session {session_id!r}"):
        s.state = SessionState.ENDED
        s.ended_at = stamp(now)
        s.terminate_cause = cause
        if u.access_node == s.node_name:
            u.access_node = None
    return s


def list_sessions(
    session: Session,
    *,
    user: str | None = None,
    node: str | None = None,
    active: bool | None = None,
) -> list[UserSession]:
    state = None if active is None else SessionState.ACTIVE if active else SessionState.ENDED
    q = where_given(
        sa.select(UserSession).order_by(UserSession.started_at, UserSession.id),
        (UserSession.user_name, user),
        (UserSession.node_name, node),
        (UserSession.state, state),
    )
    return list(session.scalars(q))
