"""Notifications NFs send (relayed by agents): listed, acknowledged, deleted, and muted per
NF instance by the operator (the Glasgow paper's UI)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.db.models import Notification, NotificationMute, VnfInstance
from netfate.db.repo import check
from netfate.db.repo._common import get_or_404, guard, stamp, where_given


def add_notification(
    session: Session,
    *,
    type: str,
    severity: str,
    source: str,
    detail: dict[str, Any] | None = None,
    nf_instance_id: str | None = None,
    node: str | None = None,
    owner: str | None = None,
    ts: float | None = None,
    now: float | None = None,
) -> Notification:
    """Store a notification. Stored even when its instance is muted (muting hides it)."""
    t = stamp(now)
    n = Notification(
        type=check.text("type", type),
        severity=check.text("severity", severity),
        source=check.text("source", source),
        detail=check.mapping("detail", detail or {}),
        nf_instance_id=check.text("nf_instance_id", nf_instance_id, optional=True),
        node=check.text("node", node, optional=True),
        owner=check.text("owner", owner, optional=True),
        ts=t if ts is None else float(ts),
        acknowledged=False,
        created_at=t,
    )
    with guard(session, "notification"):
        session.add(n)
    return n


def prune_notifications(session: Session, newest_id: int, keep: int) -> int:
    """Remove the notifications older than the newest `keep` (by id, below `newest_id` -
    `keep` + 1): an index range on the primary key. How many went."""
    done = session.execute(sa.delete(Notification).where(
        Notification.id <= newest_id - keep))
    return int(getattr(done, "rowcount", 0) or 0)


def list_notifications(
    session: Session,
    *,
    nf_instance_id: str | None = None,
    node: str | None = None,
    owner: str | None = None,
    type: str | None = None,
    severity: str | None = None,
    acknowledged: bool | None = None,
    include_muted: bool = True,
    since: float | None = None,
    before: tuple[float, int] | None = None,
    limit: int | None = None,
) -> list[Notification]:
    """Notifications, newest first (by ts, then id), matching every filter given; only
    those before `before` (a ts and id: where the page before ended), at most `limit`."""
    q = where_given(
        sa.select(Notification).order_by(Notification.ts.desc(), Notification.id.desc()),
        (Notification.nf_instance_id, nf_instance_id),
        (Notification.node, node),
        (Notification.owner, owner),
        (Notification.type, type),
        (Notification.severity, severity),
        (Notification.acknowledged, acknowledged),
    )
    if since is not None:
        q = q.where(Notification.ts >= since)
    if before is not None:
        q = q.where(sa.tuple_(Notification.ts, Notification.id) < sa.tuple_(*before))
    if not include_muted:
        muted = sa.select(NotificationMute.nf_instance_id)
        q = q.where(
            sa.or_(Notification.nf_instance_id.is_(None), Notification.nf_instance_id.not_in(muted))
        )
    if limit is not None:
        q = q.limit(max(0, int(limit)))
    return list(session.scalars(q))


def get_notification(session: Session, notification_id: int) -> Notification:
    return get_or_404(session, Notification, notification_id, "notification")


def ack_notification(session: Session, notification_id: int) -> Notification:
    n = get_notification(session, notification_id)
    with guard(session, f"notification {notification_id}"):
        n.acknowledged = True
    return n


def delete_notification(session: Session, notification_id: int) -> None:
    n = get_notification(session, notification_id)
    with guard(session, f"notification {notification_id}"):
        session.delete(n)


def mute(session: Session, nf_instance_id: str, *, now: float | None = None) -> NotificationMute:
    """Mute an NF instance's notifications (idempotent). The instance need not exist."""
    check.text("nf_instance_id", nf_instance_id)
    m = session.get(NotificationMute, nf_instance_id)
    if m is not None:
        return m
    m = NotificationMute(nf_instance_id=nf_instance_id, muted_at=stamp(now))
    with guard(session, f"mute of {nf_instance_id!r}"):
        session.add(m)
    return m


def unmute(session: Session, nf_instance_id: str) -> bool:
    """Unmute (idempotent). Whether it was muted."""
    if not is_muted(session, nf_instance_id):
        return False
    with guard(session, f"mute of {nf_instance_id!r}"):
        session.execute(
            sa.delete(NotificationMute).where(NotificationMute.nf_instance_id == nf_instance_id)
        )
    return True


def is_muted(session: Session, nf_instance_id: str) -> bool:
    if "\x00" in nf_instance_id:
        return False
    return session.get(NotificationMute, nf_instance_id) is not None


def list_mutes(session: Session) -> list[NotificationMute]:
    return list(session.scalars(sa.select(NotificationMute).order_by(NotificationMute.muted_at)))


# A new instance of an owner's NF is muted if another of that owner's same NF is: a mute
# follows the NF when it moves (a migration makes a new instance id; the operator's mute
# was lost: probe of 2026-12-06). One statement, portable (no ON CONFLICT).
_M = sa.orm.aliased(NotificationMute)
_INHERIT = sa.insert(NotificationMute).from_select(
    ["nf_instance_id", "muted_at"],
    sa.select(sa.bindparam("iid", type_=sa.String), sa.bindparam("t", type_=sa.Double))
    .where(sa.exists(sa.select(_M.nf_instance_id)
                     .join(VnfInstance, VnfInstance.id == _M.nf_instance_id)
                     .where(VnfInstance.owner == sa.bindparam("owner"),
                            VnfInstance.nf_name == sa.bindparam("nf"),
                            VnfInstance.id != sa.bindparam("iid"))),
           ~sa.exists(sa.select(NotificationMute.nf_instance_id)
                      .where(NotificationMute.nf_instance_id == sa.bindparam("iid")))))


def inherit_mute(conn: sa.Connection, iid: str, owner: str, nf: str, t: float) -> None:
    """Mute the new instance `iid` of `owner`'s NF `nf` if another instance of it is
    muted (in Core: every placement runs it; see _INHERIT)."""
    conn.execute(_INHERIT, {"iid": iid, "owner": owner, "nf": nf, "t": t})
