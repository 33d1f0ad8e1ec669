"""Operations orphaned by a dead orchestrator replica (issue #15): the leader ends them.

Each replica stamps the operations it opens with its incarnation (``params["runner"]``: its
id and a token drawn at its start, orchestrator/replica.py) and holds that incarnation's
PostgreSQL advisory lock in its lock session for as long as it lives. So an unfinished
operation whose runner's lock the leader can take has no live replica running it: the
replica died (kill -9 closes its session), or restarted (a new incarnation). Operations
without a runner were opened by a single orchestrator, which no replica is. The leader ends
them as a restarted single orchestrator ends its own (orchestrator/recovery.py: an
instantiation rolled back, a migration rolled back unless past its commit point), checked
again in the ending transaction, so an operation that finished meanwhile is left as it is.
Nothing is run twice: the nodes converge to the desired state as it stands, and the user's
next event or repair plans afresh."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.db import Database
from netfate.db.advisory import AdvisoryLocks, key
from netfate.db.models import OpState, TroubleshootOcc, VnfLcmOpOcc
from netfate.orchestrator import recovery

log = logging.getLogger("netfate.orchestrator")

WHY = "the orchestrator replica running the operation stopped"
# Held by the replica running a troubleshooting question (one at a time across replicas).
TS_KEY = key("netfate:troubleshoot")
RUNNER = "runner"  # the params key of an operation's replica incarnation


def incarnation_key(incarnation: str) -> int:
    return key(f"netfate:incarnation:{incarnation}")


def unfinished(s: Session) -> dict[str, list[str]]:
    """Unfinished operations' ids by their runner ("" when they have none)."""
    rows = s.execute(sa.select(VnfLcmOpOcc.id, VnfLcmOpOcc.params).where(
        VnfLcmOpOcc.operation_state.in_([OpState.PROCESSING, OpState.ROLLING_BACK])))
    out: dict[str, list[str]] = defaultdict(list)
    for op_id, params in rows:
        runner = (params or {}).get(RUNNER)
        out[runner if isinstance(runner, str) else ""].append(op_id)
    return dict(out)


async def sweep(db: Database, locks: AdvisoryLocks, me: str) -> list[str]:
    """End every unfinished operation whose runner is gone (``me``: this replica's
    incarnation, whose operations are its own to finish); their ids."""
    ended: list[str] = []
    for runner, ids in (await db.read(unfinished)).items():
        if runner == me:
            continue
        if runner and not await locks.try_lock(incarnation_key(runner)):
            continue  # that replica lives
        try:
            ended += await db.run(recovery.end_interrupted, set(ids), WHY)
        finally:
            if runner:
                await locks.unlock(incarnation_key(runner))
    if ended:
        log.warning("ended %d operations orphaned by a stopped replica: %s", len(ended), ended)
    return ended


def _questions_open(s: Session) -> bool:
    return s.scalar(sa.select(sa.func.count()).select_from(TroubleshootOcc).where(
        TroubleshootOcc.state == "PROCESSING")) != 0


async def sweep_troubleshooting(db: Database, locks: AdvisoryLocks,
                                here: Callable[[], bool]) -> bool:
    """A troubleshooting question recorded as running while no replica runs one (none
    holds TS_KEY, and ``here()``: this replica has none either) was cut short by its
    replica's death: fail it and remove every probe and probe rule, as a restarted single
    orchestrator does (recovery.end_troubleshooting). Whether it did."""
    if here() or not await db.read(_questions_open):
        return False
    if not await locks.try_lock(TS_KEY):
        return False  # a live replica runs one
    if here():  # this session's own question took it meanwhile (the lock is re-entrant)
        await locks.unlock(TS_KEY)
        return False
    try:
        await db.run(recovery.end_troubleshooting)
    finally:
        await locks.unlock(TS_KEY)
    return True
