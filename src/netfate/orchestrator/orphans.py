"""Operations orphaned by a dead orchestrator replica (issue #15): the leader ends them.

A replica runs each operation under its owner's plan lock, which with replicas is also a
PostgreSQL advisory lock of its session (orchestrator/plan_locks.py). So an unfinished
operation whose owner's lock the leader can take (with the gate shared) has no live replica
running it: its replica died, or the whole cluster restarted. The leader ends it as a
restarted single orchestrator ends its own (orchestrator/recovery.py: an instantiation
rolled back, a migration rolled back unless past its commit point), checked again under the
lock, so an operation that finished meanwhile is left as it is. Nothing is run twice: the
nodes converge to the desired state as it stands, and the user's next event or repair plans
afresh."""

from __future__ import annotations

import logging
from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.db import Database
from netfate.db.models import OpState, VnfInstance, VnfLcmOpOcc
from netfate.orchestrator import recovery
from netfate.orchestrator.plan_locks import PlanLocks
from netfate.owners import OPERATOR

log = logging.getLogger("netfate.orchestrator")

WHY = "the orchestrator replica running the operation stopped"


def unfinished(s: Session) -> dict[str, list[str]]:
    """Unfinished operations' ids by the owner of their NF (OPERATOR when it has none)."""
    rows = s.execute(
        sa.select(VnfLcmOpOcc.id, VnfLcmOpOcc.params, VnfInstance.owner)
        .outerjoin(VnfInstance, VnfInstance.id == VnfLcmOpOcc.vnf_instance_id)
        .where(VnfLcmOpOcc.operation_state.in_([OpState.PROCESSING, OpState.ROLLING_BACK])))
    out: dict[str, list[str]] = defaultdict(list)
    for op_id, params, owner in rows:
        who = owner or (params or {}).get("owner") or OPERATOR
        out[str(who)].append(op_id)
    return dict(out)


async def sweep(db: Database, locks: PlanLocks) -> list[str]:
    """End every unfinished operation no live replica runs; their ids."""
    ended: list[str] = []
    for owner, ids in (await db.read(unfinished)).items():
        if not await locks.try_acquire(owner):
            continue  # a replica (maybe this one) runs a plan of theirs
        try:
            ended += await db.run(recovery.end_interrupted, set(ids), WHY)
        finally:
            locks.release(owner, False)
    if ended:
        log.warning("ended %d operations orphaned by a stopped replica: %s", len(ended), ended)
    return ended
