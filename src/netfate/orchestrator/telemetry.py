"""Telemetry batching: what the agents report, written to the database in batches, off the
event loop.

- `ActualStates`: the NFs each node reports (telemetry's NF lists, and push replies) become
  instances' actual states. Telemetry reports are recorded every `record_observed` (the
  orchestrator calls it every TELEMETRY_FLUSH_S), all nodes in one transaction; a push's
  reply is recorded at once and supersedes an older report.
- `Readings`: nodes' resource readings (CPU, memory, NF count) and last-seen times, written in
  one transaction per batch instead of one per message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.bus.messages import Reply
from netfate.db import Database, repo
from netfate.db.models import Node

# Small batches often rather than one large one a second: each batch holds a database thread.
TELEMETRY_FLUSH_S = 0.25


class ActualStates:
    """`changes(node)`: how many changes the coordinator made to the node's desired state (a
    report equal to the previous one, with no change since, is not compared again)."""

    def __init__(self, db: Database, changes: Callable[[str], int]) -> None:
        self.db = db
        self._changes = changes
        self._writes: dict[str, int] = {}  # per node: writes of reported actual states
        # Per node: the last NF list observed, with the marks it was observed at.
        self._observed: dict[str, tuple[frozenset[tuple[str, str]], tuple[int, int]]] = {}
        self._reports: dict[str, dict[str, str]] = {}  # NF lists not yet recorded
        # One write at a time: a reply recorded after a batch of older reports lands after it.
        self._lock = asyncio.Lock()

    def observe(self, node: str, nfs: list[Any]) -> None:
        """Telemetry's NF list (NFActual-like: instance_id, state): recorded at the next
        `record_observed`."""
        self._reports[node] = {n.instance_id: n.state for n in nfs}

    async def record_reply(self, node: str, reply: Reply) -> None:
        """What a push's reply reports, at once: actual states, and the removal of instances
        the node no longer runs that should be absent."""
        async with self._lock:
            # A telemetry report received before this reply is older than it: drop it.
            self._reports.pop(node, None)
            await self._write({node: {n.instance_id: n.state for n in reply.nfs}})

    async def record_observed(self) -> None:
        """Record the telemetry reports received since the last call."""
        async with self._lock:
            reports, self._reports = self._reports, {}
            todo: dict[str, dict[str, str]] = {}
            keys: dict[str, frozenset[tuple[str, str]]] = {}
            for node, nfs in reports.items():
                key = frozenset(nfs.items())
                if self._observed.get(node) != (key, self._marks(node)):
                    todo[node], keys[node] = nfs, key
            if todo:
                await self._write(todo)
            for node, key in keys.items():
                self._observed[node] = (key, self._marks(node))

    def pending(self) -> bool:
        """Whether reports wait to be recorded."""
        return bool(self._reports)

    async def _write(self, reports: dict[str, dict[str, str]]) -> None:
        for node in await self.db.run(repo.record_actual_states, reports):
            self._writes[node] = self._writes.get(node, 0) + 1

    def _marks(self, node: str) -> tuple[int, int]:
        return self._changes(node), self._writes.get(node, 0)


_WRITE_READINGS = (sa.update(Node).where(Node.name == sa.bindparam("n"))
                   .values(resources=sa.bindparam("r"), last_seen=sa.bindparam("t"),
                           online=True))


def write_readings(s: Session, batch: dict[str, tuple[dict[str, Any], float]]) -> None:
    """Readings and last-seen times (node -> (resources, unix time)), in one statement; a node
    that reports is online (a node deleted meanwhile is simply not updated)."""
    s.connection().execute(_WRITE_READINGS, [{"n": n, "r": r, "t": ts}
                                             for n, (r, ts) in batch.items()])


class Readings:
    """Each node's latest readings, and those not yet written to the database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.latest: dict[str, dict[str, Any]] = {}
        self._unwritten: dict[str, tuple[dict[str, Any], float]] = {}
        self._lock = asyncio.Lock()  # batches written in the order they were taken

    def registered(self, node: str, resources: dict[str, Any]) -> None:
        """A registration wrote the node's readings: older unwritten ones are dropped."""
        self.latest[node] = resources
        self._unwritten.pop(node, None)

    def later(self, node: str, resources: dict[str, Any], at: float | None = None) -> None:
        """Written at the next `flush`."""
        self._unwritten[node] = (resources, at if at is not None else time.time())

    async def flush(self, nodes: list[str] | None = None) -> None:
        """Write the readings not yet in the database (of `nodes`, or all)."""
        async with self._lock:
            if nodes is None:
                batch, self._unwritten = self._unwritten, {}
            else:
                batch = {n: self._unwritten.pop(n) for n in nodes if n in self._unwritten}
            if batch:
                await self.db.run(write_readings, batch)
