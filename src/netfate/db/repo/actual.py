"""What the agents report running: instances' actual states, in batches."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.db.models import ActualState, Presence, VnfInstance

_Q_ON_NODES = (sa.select(VnfInstance.id, VnfInstance.node_name, VnfInstance.desired_state,
                         VnfInstance.actual_state)
               .where(VnfInstance.node_name.in_(sa.bindparam("nodes", expanding=True))))
_DELETE = sa.delete(VnfInstance).where(VnfInstance.id == sa.bindparam("i"))
_SET_ACTUAL = (sa.update(VnfInstance).where(VnfInstance.id == sa.bindparam("i"))
               .values(actual_state=sa.bindparam("a"), updated_at=sa.bindparam("t")))


def record_actual_states(session: Session, reports: dict[str, dict[str, str]],
                         *, now: float | None = None) -> set[str]:
    """Nodes' reports (node -> instance id -> "running" or another agent state): each reported
    instance's actual state, and the removal of instances that should be absent and are no
    longer reported. Reads with one query per 500 nodes, writes only what differs, in two
    statements for any number of rows (as delete_instance and set_instance_actual_state
    would). The nodes whose rows changed."""
    rows: list[Any] = []
    nodes = sorted(reports)
    conn = session.connection()
    for k in range(0, len(nodes), 500):
        rows += conn.execute(_Q_ON_NODES, {"nodes": nodes[k:k + 500]}).all()
    wrote: set[str] = set()
    gone: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    t = now if now is not None else time.time()
    for iid, node, desired, actual_now in rows:
        st = reports[node].get(iid)
        if desired == Presence.ABSENT and st is None:
            gone.append({"i": iid})
            wrote.add(node)
        elif st is not None:
            actual = ActualState.RUNNING if st == "running" else ActualState.STOPPED
            if actual_now != actual:
                states.append({"i": iid, "a": actual, "t": t})
                wrote.add(node)
    if gone:
        conn.execute(_DELETE, gone)
    if states:
        conn.execute(_SET_ACTUAL, states)
    return wrote
