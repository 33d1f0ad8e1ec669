"""The accounting sessions the orchestrator has open, kept in the database (table acct_open,
migration 0007) so that an orchestrator restart (even a kill -9) goes on with them.

RFC 2866 5.3/5.5: the Interim-Updates and the Stop of one Acct-Session-Id carry the totals
since its Start. The switches' per-user counters are cumulative only while the flows last, and
the orchestrator's meter (`UsageMeter`) is what sums them across roams and flow rewrites; so
the meter (each switch's last reading and baseline), whether the Start was answered, the last
Interim-Update and the totals already reported are written here, and read back at start-up.

    rows = load(s)            # at start-up: [(LoginRow, started, last_interim, meter, reported)]
    save(s, [state, ...])     # the open logins whose state changed
    forget(s, ["acct id"])    # their Stop was answered (or given up)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from netfate.db.models import AcctOpen
from netfate.radius.accounting import Usage, UsageMeter

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger("netfate.orchestrator.accounting")


@dataclass(frozen=True)
class Saved:
    """One open accounting session as kept. ``login_at``, ``last_interim``: unix seconds."""

    acct_id: str
    user: str
    nas_id: str
    mac: str | None
    ip: str | None
    login_at: float
    started: bool
    last_interim: float
    meter: UsageMeter
    reported: Usage


def load(s: Session) -> list[Saved]:
    """Every open accounting session kept. A damaged row (a meter that does not decode) comes
    back with an empty meter and its reported totals, logged: the totals never go back."""
    out = []
    for r in s.scalars(sa.select(AcctOpen).order_by(AcctOpen.login_at)):
        try:
            reported = Usage.from_list(r.reported)
        except ValueError:
            reported = Usage()
        try:
            meter = UsageMeter.from_json(r.meter)
        except ValueError as exc:
            log.warning("accounting session %s: its kept meter is damaged (%s); going on from "
                        "the totals reported", r.acct_session_id, exc)
            meter = UsageMeter()
        out.append(Saved(r.acct_session_id, r.user_name, r.nas_id, r.mac, r.ip, r.login_at,
                         r.started, r.last_interim, meter, reported))
    return out


def save(s: Session, states: Iterable[Saved]) -> None:
    """Insert or update these rows (one transaction, the caller's)."""
    now = time.time()
    for st in states:
        values = {"user_name": st.user, "nas_id": st.nas_id, "mac": st.mac, "ip": st.ip,
                  "login_at": st.login_at, "started": st.started,
                  "last_interim": st.last_interim, "meter": st.meter.to_json(),
                  "reported": st.reported.as_list(), "updated_at": now}
        row = s.get(AcctOpen, st.acct_id)
        if row is None:
            s.add(AcctOpen(acct_session_id=st.acct_id, **values))
        else:
            for k, v in values.items():
                setattr(row, k, v)
    s.flush()


def forget(s: Session, acct_ids: Iterable[str]) -> None:
    """Remove these rows (their Stop went)."""
    ids = list(acct_ids)
    if ids:
        s.execute(sa.delete(AcctOpen).where(AcctOpen.acct_session_id.in_(ids)))
