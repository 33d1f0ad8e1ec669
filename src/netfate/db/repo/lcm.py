"""Lifecycle operation occurrences and subscriptions (ETSI SOL003 VnfLcmOpOcc, LccnSubscription).

An operation starts PROCESSING. From there (SOL003 Fig. 5.6.2.2, without STARTING):
PROCESSING -> COMPLETED | FAILED_TEMP | FAILED | ROLLING_BACK;
FAILED_TEMP -> PROCESSING (retry) | ROLLING_BACK (rollback) | FAILED (fail);
ROLLING_BACK -> ROLLED_BACK | FAILED_TEMP | FAILED. COMPLETED, FAILED, ROLLED_BACK are final.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.db.models import LcmOperation, OpState, Subscription, VnfLcmOpOcc
from netfate.db.repo import check
from netfate.db.repo._common import get_or_404, guard, stamp, where_given
from netfate.errors import Conflict, InvalidInput

TRANSITIONS: dict[OpState, frozenset[OpState]] = {
    OpState.PROCESSING: frozenset(
        {OpState.COMPLETED, OpState.FAILED_TEMP, OpState.FAILED, OpState.ROLLING_BACK}
    ),
    OpState.FAILED_TEMP: frozenset({OpState.PROCESSING, OpState.ROLLING_BACK, OpState.FAILED}),
    OpState.ROLLING_BACK: frozenset({OpState.ROLLED_BACK, OpState.FAILED_TEMP, OpState.FAILED}),
    OpState.COMPLETED: frozenset(),
    OpState.FAILED: frozenset(),
    OpState.ROLLED_BACK: frozenset(),
}
FINAL = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


def new_op_occ(
    session: Session,
    operation: LcmOperation | str,
    vnf_instance_id: str,
    params: dict[str, Any] | None = None,
    *,
    now: float | None = None,
) -> VnfLcmOpOcc:
    """A new operation occurrence, PROCESSING from now."""
    op = check.enum(LcmOperation, operation, "operation")
    t = stamp(now)
    occ = VnfLcmOpOcc(
        id=str(uuid.uuid4()),
        operation=op,
        operation_state=OpState.PROCESSING,
        vnf_instance_id=check.text("vnf_instance_id", vnf_instance_id),
        params=check.mapping("params", params or {}),
        error=None,
        start_time=t,
        state_entered_time=t,
        is_cancel_pending=False,
    )
    with guard(session, f"{op.value} operation on {vnf_instance_id!r}"):
        session.add(occ)
    return occ


def get_op_occ(session: Session, op_id: str) -> VnfLcmOpOcc:
    return get_or_404(session, VnfLcmOpOcc, op_id, "lifecycle operation occurrence")


def set_op_state(
    session: Session,
    op_id: str,
    state: OpState | str,
    *,
    error: dict[str, Any] | None = None,
    now: float | None = None,
) -> VnfLcmOpOcc:
    """Move an operation to ``state`` (stamping state_entered_time). ``error`` is a problem
    detail (RFC 7807 style) kept with failed states and cleared on retry and completion.
    Setting the current state again changes nothing but the error; an illegal move is a
    Conflict."""
    new = check.enum(OpState, state, "operation_state")
    problem = check.mapping("error", error) if error is not None else None
    occ = get_op_occ(session, op_id)
    cur = occ.operation_state
    if new != cur and new not in TRANSITIONS[cur]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[cur])) or "none (final)"
        raise Conflict(
            f"operation {op_id} is {cur.value}: cannot move to {new.value} (allowed: {allowed})"
        )
    with guard(session, f"operation {op_id}"):
        if new != cur:
            occ.operation_state = new
            occ.state_entered_time = stamp(now)
            if new in (OpState.PROCESSING, OpState.COMPLETED):
                occ.error = None
            if new in FINAL or new == OpState.FAILED_TEMP:
                occ.is_cancel_pending = False
        if problem is not None:
            occ.error = problem
    return occ


def request_cancel(session: Session, op_id: str) -> VnfLcmOpOcc:
    """Ask for a PROCESSING or ROLLING_BACK operation to be cancelled (its worker checks)."""
    occ = get_op_occ(session, op_id)
    if occ.operation_state not in (OpState.PROCESSING, OpState.ROLLING_BACK):
        raise Conflict(f"operation {op_id} is {occ.operation_state.value}: nothing to cancel")
    with guard(session, f"operation {op_id}"):
        occ.is_cancel_pending = True
    return occ


def list_op_occs(
    session: Session,
    state: OpState | str | None = None,
    *,
    vnf_instance_id: str | None = None,
    after: tuple[float, str] | None = None,
    limit: int | None = None,
    newest_first: bool = False,
) -> list[VnfLcmOpOcc]:
    """Operations, oldest first (by start time, then id; `newest_first`: the other way);
    only those after `after` (a start time and id: where the page before ended; oldest
    first only), at most `limit`."""
    op_state = None if state is None else check.enum(OpState, state, "operation_state")
    order = (VnfLcmOpOcc.start_time, VnfLcmOpOcc.id)
    q = where_given(
        sa.select(VnfLcmOpOcc).order_by(*(c.desc() for c in order) if newest_first else order),
        (VnfLcmOpOcc.operation_state, op_state),
        (VnfLcmOpOcc.vnf_instance_id, vnf_instance_id),
    )
    if after is not None:
        q = q.where(sa.tuple_(VnfLcmOpOcc.start_time, VnfLcmOpOcc.id) > sa.tuple_(*after))
    if limit is not None:
        q = q.limit(max(0, int(limit)))
    return list(session.scalars(q))


# Lifecycle subscriptions at most: each costs a POST per operation state change.
MAX_SUBSCRIPTIONS = 256


class DuplicateSubscription(Conflict):
    """A subscription with the same callback URI and filter exists: `existing`, its id."""

    def __init__(self, existing: str) -> None:
        super().__init__(f"subscription {existing} has the same callbackUri and filter")
        self.existing = existing


def _equivalent(uri: str, flt: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two subscriptions the same: the callback as RFC 3986 §6.2.2-3 normalises
    it (scheme and host case, the default port, an empty path), and the filter's lists as
    sets (an empty list is no filter)."""
    p = urlsplit(uri)
    try:
        port = p.port
    except ValueError:
        port = None
    port = port or (443 if p.scheme.lower() == "https" else 80)
    where = (p.scheme.lower(), (p.hostname or "").lower(), port, p.path or "/", p.query)
    what = tuple(sorted((k, tuple(sorted(map(str, v))) if isinstance(v, list) else str(v))
                        for k, v in flt.items() if v not in (None, [])))
    return where, what


def add_subscription(
    session: Session,
    callback_uri: str,
    *,
    filter: dict[str, Any] | None = None,
    now: float | None = None,
) -> Subscription:
    """Subscribe ``callback_uri`` (http or https) to lifecycle notifications. Raises
    DuplicateSubscription naming the existing one for the same URI and filter (ETSI GS
    NFV-SOL 013 §5.3: duplicates need not be created; the API answers 303 See Other), and
    Conflict past MAX_SUBSCRIPTIONS (each is a POST per operation state change)."""
    check.text("callback_uri", callback_uri)
    parts = urlsplit(callback_uri)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(f"callback_uri {callback_uri!r} must be an http(s) URL")
    flt = check.mapping("filter", filter or {})
    same = _equivalent(callback_uri, flt)
    for other in session.scalars(sa.select(Subscription)):
        if _equivalent(other.callback_uri, other.filter or {}) == same:
            raise DuplicateSubscription(other.id)
    held = session.scalar(sa.select(sa.func.count()).select_from(Subscription)) or 0
    if held >= MAX_SUBSCRIPTIONS:
        raise Conflict(f"{held} subscriptions exist; at most {MAX_SUBSCRIPTIONS} (delete "
                       "some first)")
    sub = Subscription(
        id=str(uuid.uuid4()),
        callback_uri=callback_uri,
        filter=flt,
        created_at=stamp(now),
    )
    with guard(session, f"subscription for {callback_uri!r}"):
        session.add(sub)
    return sub


def get_subscription(session: Session, sub_id: str) -> Subscription:
    return get_or_404(session, Subscription, sub_id, "subscription")


def list_subscriptions(session: Session) -> list[Subscription]:
    return list(session.scalars(sa.select(Subscription).order_by(Subscription.created_at)))


def delete_subscription(session: Session, sub_id: str) -> None:
    sub = get_subscription(session, sub_id)
    with guard(session, f"subscription {sub_id}"):
        session.delete(sub)


def merge_op_params(session: Session, op_id: str, extra: dict[str, Any]) -> VnfLcmOpOcc:
    """Add keys to an operation's params (what it measured, say)."""
    occ = get_or_404(session, VnfLcmOpOcc, op_id, "operation occurrence")
    occ.params = {**(occ.params or {}), **extra}
    return occ
