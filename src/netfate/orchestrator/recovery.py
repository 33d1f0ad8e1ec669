"""Operations an orchestrator left unfinished when it stopped (a crash, or a stop while an
agent was slow to answer): the next start ends them, so none stays PROCESSING forever.

What each had changed in the desired state is settled the way a failure would have: an
instantiation is rolled back, a migration too unless it had passed its commit point (the source
released), and the rest fail with their desired state as it is. The nodes then converge to that
on their next registration or reconciliation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.db import Database, repo
from netfate.db.models import (
    LcmOperation,
    OpState,
    Presence,
    TroubleshootOcc,
    TsRule,
    VnfInstance,
)
from netfate.errors import NotFound
from netfate.orchestrator.troubleshoot_probes import RULE_PREFIX
from netfate.owners import OPERATOR

log = logging.getLogger("netfate.orchestrator")

WHY = "the orchestrator restarted during the operation"


def _problem(detail: str) -> dict[str, Any]:
    return {"type": "about:blank", "title": "operation interrupted", "status": 500,
            "detail": detail}


def _set_absent(s: Any, iid: str | None) -> None:
    if not iid:
        return
    try:
        repo.set_instance_desired_state(s, iid, Presence.ABSENT)
    except NotFound:
        pass


def _present(s: Any, iid: str) -> bool:
    try:
        return repo.get_instance(s, iid).desired_state == Presence.PRESENT
    except NotFound:
        return False


def end_interrupted_ops(db: Database) -> list[str]:
    """End every PROCESSING or ROLLING_BACK operation; the ids of those ended."""
    return db.call(end_interrupted)


def end_interrupted(s: Session, only: Collection[str] | None = None,
                    why: str = WHY) -> list[str]:
    """`end_interrupted_ops` in the caller's transaction (for `Database.run`); with `only`,
    just those of these ids that are still unfinished (orchestrator/orphans.py)."""
    ended = []
    occs = (repo.list_op_occs(s, state=OpState.PROCESSING)
            + repo.list_op_occs(s, state=OpState.ROLLING_BACK))
    for occ in occs:
        if only is not None and occ.id not in only:
            continue
        params = occ.params or {}
        final = OpState.FAILED
        detail = f"{why}; the nodes converge to the desired state as it stands"
        if occ.operation == LcmOperation.INSTANTIATE:
            _set_absent(s, occ.vnf_instance_id)
            final, detail = OpState.ROLLED_BACK, f"{why}; rolled back"
        elif occ.operation == LcmOperation.MIGRATE:
            if _present(s, occ.vnf_instance_id):  # the source still wanted: undo
                _set_absent(s, params.get("new_instance_id"))
                final, detail = OpState.ROLLED_BACK, f"{why}; rolled back"
            else:  # the target had taken over and the source was being released
                final = OpState.COMPLETED
        elif occ.operation_state == OpState.ROLLING_BACK:
            final = OpState.ROLLED_BACK
        if final == OpState.ROLLED_BACK and occ.operation_state == OpState.PROCESSING:
            repo.set_op_state(s, occ.id, OpState.ROLLING_BACK, error=_problem(detail))
        repo.set_op_state(s, occ.id, final,
                          error=None if final == OpState.COMPLETED else _problem(detail))
        ended.append(occ.id)
        log.warning("%s %s on %s: %s (%s)", occ.operation.value, occ.id,
                    occ.vnf_instance_id, final.value, why)
    return ended




def end_troubleshooting(s: Session) -> tuple[list[str], int]:
    """A troubleshooting question runs in the orchestrator's memory: at start, any probe
    still wanted (an operator-owned NF instance) and any probe TS rule is left from a
    question the restart interrupted. The probes are set absent (the nodes remove them on
    their next reconciliation), the rules deleted (the switches' next publication drops
    them), the question recorded as FAILED. (The probe ids, how many rules.)"""
    probes = list(s.scalars(sa.select(VnfInstance.id).where(
        VnfInstance.owner == OPERATOR, VnfInstance.desired_state == Presence.PRESENT)))
    for iid in probes:
        _set_absent(s, iid)
    rules = list(s.scalars(sa.select(TsRule).where(
        TsRule.rule_id.startswith(RULE_PREFIX, autoescape=True))))
    for r in rules:
        s.delete(r)
    for occ in s.scalars(sa.select(TroubleshootOcc).where(
            TroubleshootOcc.state == "PROCESSING")):
        occ.state, occ.end_time = "FAILED", time.time()
        occ.doc = {**occ.doc, "operation_state": "FAILED", "end_time": occ.end_time,
                   "error": _problem(f"{WHY}; its probes and their rules are removed")}
    s.flush()
    if probes or rules:
        log.warning("troubleshooting probes %s and %d of their TS rules removed at start (%s)",
                    probes, len(rules), WHY)
    return probes, len(rules)
