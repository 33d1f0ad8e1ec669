"""The last exported state of each NF instance, so that an NF whose node dies can be placed
again *with* its state (the NetFATE paper's migration of the firewall's rules and
connections, applied to a failover), not from scratch.

An NF's state document (`netfate-state/1`, drivers/nf_state.py: for the firewall, its ruleset
and conntrack entries) is flavour-independent, so a checkpoint taken from a native NF on a CPE
can be imported into a container in the DC. Documents come from two places: every migration's
export (executor.MoveState), and a periodic pass (`take`) that asks each online node's agent
to export the state of its running, exportable NFs. A failover (a Migrate whose source node is
offline, executor.RestoreState) imports the newest one.

Kept in the orchestrator's memory: a restarted orchestrator has none until the next pass.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.bus.messages import MAX_EXPORTS, Command
from netfate.db import Database
from netfate.db.models import ActualState, Node, Presence, VnfInstance, VnfPackage
from netfate.errors import NetfateError
from netfate.orchestrator.agents import AgentBus

log = logging.getLogger("netfate.checkpoints")


@dataclass(frozen=True)
class Checkpoint:
    """An instance's exported state document and when (unix seconds) it was taken."""

    instance_id: str
    at: float
    state: dict[str, Any]


class Checkpoints:
    """Instance id -> its newest Checkpoint."""

    def __init__(self) -> None:
        self._last: dict[str, Checkpoint] = {}

    def put(self, instance_id: str, state: dict[str, Any], at: float | None = None) -> None:
        """Keep `state` as the instance's newest document (an older `at` is ignored)."""
        t = time.time() if at is None else at
        old = self._last.get(instance_id)
        if old is None or old.at <= t:
            self._last[instance_id] = Checkpoint(instance_id, t, state)

    def get(self, instance_id: str) -> Checkpoint | None:
        return self._last.get(instance_id)

    def forget(self, keep: set[str]) -> None:
        """Drop the documents of every instance not in `keep` (those no longer wanted)."""
        for iid in set(self._last) - keep:
            del self._last[iid]

    def summary(self) -> list[dict[str, Any]]:
        """[{instance_id, at}] (no documents: they hold users' connections)."""
        return [{"instance_id": c.instance_id, "at": c.at}
                for c in sorted(self._last.values(), key=lambda c: c.instance_id)]

    async def take(self, db: Database, bus: AgentBus) -> list[str]:
        """One pass: export the state of every running, exportable instance wanted on an
        online node, one node after another, up to MAX_EXPORTS NFs per agent command
        (`export_states`: at 10000 NFs, one command per NF cost the orchestrator ~200
        requests/s, most of its socket writes). The ids checkpointed; a node whose agent
        fails or does not answer is skipped (its NFs keep their previous checkpoint), an NF
        the agent could not export too."""
        wanted, todo = await db.read(_exportable)
        self.forget(wanted)
        by_node: dict[str, list[str]] = {}
        for node, iid in todo:
            by_node.setdefault(node, []).append(iid)
        done: list[str] = []
        for node, ids in by_node.items():
            try:
                await self._take_node(bus, node, ids, done)
            except NetfateError as exc:
                log.debug("no checkpoints on %s: %s", node, exc)
        return done

    async def _take_node(self, bus: AgentBus, node: str, ids: list[str],
                         done: list[str]) -> None:
        queue = list(ids)
        while queue:
            chunk, queue = queue[:MAX_EXPORTS], queue[MAX_EXPORTS:]
            reply = await bus.command(node, Command(op="export_states", instance_ids=chunk))
            states = reply.data.get("states") if reply.ok else None
            if not isinstance(states, dict):  # an agent of before: one command per NF
                await self._take_one_by_one(bus, node, chunk, done)
                continue
            for iid in chunk:
                if isinstance(doc := states.get(iid), dict):
                    self.put(iid, doc)
                    done.append(iid)
            left = reply.data.get("left")
            if states and isinstance(left, list):  # (no progress: the rest stays as it is)
                queue = [i for i in chunk if i in left and i not in states] + queue

    async def _take_one_by_one(self, bus: AgentBus, node: str, ids: list[str],
                               done: list[str]) -> None:
        for iid in ids:
            reply = await bus.command(node, Command(op="export_state", instance_id=iid))
            if reply.ok and isinstance(reply.data, dict):
                self.put(iid, reply.data)
                done.append(iid)


# Core statements (plain rows, no ORM objects): a pass reads every node and every instance
# wanted (10000 at the control-plane bench's size), every checkpoint_interval.
_Q_NODES = sa.select(Node.name, Node.online, Node.admin_down)
_Q_WANTED = (sa.select(VnfInstance.id, VnfInstance.node_name, VnfInstance.actual_state,
                       VnfInstance.bundle_sha256)
             .where(VnfInstance.desired_state == Presence.PRESENT).order_by(VnfInstance.id))
_Q_DESCRIPTORS = sa.select(VnfPackage.sha256, VnfPackage.descriptor).where(
    VnfPackage.sha256.in_(sa.bindparam("shas", expanding=True)))


def _exportable(s: Session) -> tuple[set[str], list[tuple[str, str]]]:
    """(ids of instances wanted present, [(node, id)] of those running on an online node
    whose descriptor says their state can be exported)."""
    conn = s.connection()
    online = {name for name, up, down in conn.execute(_Q_NODES) if up and not down}
    rows = conn.execute(_Q_WANTED).all()
    wanted = {r.id for r in rows}
    running = [r for r in rows
               if r.node_name in online and r.actual_state == ActualState.RUNNING]
    shas = sorted({r.bundle_sha256 for r in running})
    exportable = {sha for sha, d in conn.execute(_Q_DESCRIPTORS, {"shas": shas})
                  if ((d or {}).get("state") or {}).get("exportable")} if shas else set()
    return wanted, [(r.node_name, r.id) for r in running if r.bundle_sha256 in exportable]
