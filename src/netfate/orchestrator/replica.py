"""One orchestrator replica among several (issue #15): its membership, which partitions it
owns, and whether it leads.

- **Membership** (netfate.membership): every replica announces itself on
  ``netfate.orchestrator.alive`` every second; one not heard from for 3.5 s is gone, and one
  that stops cleanly says so (its partitions move at once).
- **Partitions**: an agent's messages are keyed by their node; the replica that owns the key
  (rendezvous hashing over the live replicas) handles them, so a node's registration,
  telemetry, events and notifications are handled by one replica at a time, in order. The
  API is served by every replica; a user's plans are ordered across replicas by their
  PostgreSQL advisory lock (orchestrator/plan_locks.py).
- **Leadership**: the replica whose advisory-lock session holds ``netfate:leader`` runs the
  singletons (reconciliation, idle sweeps, checkpoints, the sweep of operations orphaned by a
  dead replica, and publishing the switch states). The others try to take it every
  ``LEADER_POLL_S`` s, so a dead leader is replaced within that once PostgreSQL has seen its
  session end (at once for a killed process on a live machine).
- A replica whose lock session is lost (the database restarted, a network partition) holds
  no lock any more: it stops (crash-only; its supervisor starts it again)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.msg import Msg

from netfate.bus import subjects
from netfate.bus.messages import ReplicaAlive
from netfate.db.advisory import AdvisoryLocks, LockSessionLost, key
from netfate.errors import Conflict
from netfate.membership import HEARTBEAT_S, Membership, owner_of
from netfate.orchestrator.orphans import incarnation_key

log = logging.getLogger("netfate.replica")

LEADER_KEY = key("netfate:leader")
LEADER_POLL_S = 0.5


def alive_key(replica: str) -> int:
    return key(f"netfate:replica:{replica}")


def _stop_this_process() -> None:
    # Our own PID: the orchestrator's server stops cleanly on SIGTERM.
    os.kill(os.getpid(), signal.SIGTERM)


class Replica:
    def __init__(self, rid: str, nc: Any, locks: AdvisoryLocks, api: str = "",
                 on_leadership: Callable[[bool], Awaitable[None]] | None = None,
                 on_lost: Callable[[], None] = _stop_this_process) -> None:
        self.id = rid
        # This run of the replica: stamped on the operations it opens (orchestrator/
        # orphans.py), so a replica restarted with the same id is not taken for its past.
        self.incarnation = f"{rid}-{secrets.token_hex(4)}"
        self.nc = nc
        self.locks = locks
        self.api = api
        self.membership = Membership(rid)
        self.leader = False
        self.leader_since: float | None = None
        self.leaders: dict[str, float] = {}  # replica -> when it last said it leads
        self.apis: dict[str, str] = {}
        self._on_leadership = on_leadership
        self._on_lost = on_lost
        self._tasks: list[asyncio.Task[None]] = []
        self._sub: Any = None
        self._lost = False

    # -- start/stop -----------------------------------------------------------------------
    async def start(self) -> None:
        """Take this replica's liveness lock (Conflict if another process runs with the same
        id), then announce it and contend for leadership in the background."""
        if not await self.locks.try_lock(alive_key(self.id)):
            raise Conflict(f"orchestrator replica {self.id!r} is already running (its "
                           "liveness lock is held by another database session)")
        await self.locks.try_lock(incarnation_key(self.incarnation))  # new: always free
        self._sub = await self.nc.subscribe(subjects.ORCHESTRATOR_ALIVE, cb=self._on_alive)
        await self._beat()
        self._tasks = [asyncio.create_task(self._heartbeats()),
                       asyncio.create_task(self._lead())]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        with contextlib.suppress(Exception):
            await self._beat(leaving=True)
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        self.leader = False
        with contextlib.suppress(Exception):
            await self.locks.close()  # every lock of this session goes with it

    # -- partitions -----------------------------------------------------------------------
    def members(self) -> list[str]:
        return self.membership.members()

    def owns(self, partition_key: str) -> bool:
        """Whether this replica handles what is keyed by ``partition_key`` (a node name)."""
        return owner_of(partition_key, self.membership.members()) == self.id

    def current_leader(self) -> str | None:
        """The leader as heartbeats tell it (this replica if it leads)."""
        if self.leader:
            return self.id
        live = set(self.membership.members())
        recent = [(at, r) for r, at in self.leaders.items()
                  if r in live and time.monotonic() - at <= 2 * HEARTBEAT_S + 0.5]
        return max(recent)[1] if recent else None

    def view(self) -> dict[str, Any]:
        """For the API: who this is, who is alive, who leads."""
        return {"replica": self.id, "leader": self.current_leader(), "is_leader": self.leader,
                "leader_since": self.leader_since, "members": self.members(),
                "apis": {**{r: a for r, a in self.apis.items() if r in self.members()},
                         self.id: self.api}}

    # -- heartbeats -----------------------------------------------------------------------
    async def _on_alive(self, msg: Msg) -> None:
        try:
            a = ReplicaAlive.model_validate_json(msg.data)
        except ValueError:
            return
        if a.replica == self.id:
            return
        if a.leaving:
            self.membership.forget(a.replica)
            self.leaders.pop(a.replica, None)
            return
        self.membership.beat(a.replica)
        if a.api:
            self.apis[a.replica] = a.api
        if a.leader:
            self.leaders[a.replica] = time.monotonic()
        else:
            self.leaders.pop(a.replica, None)

    async def _beat(self, leaving: bool = False) -> None:
        msg = ReplicaAlive(replica=self.id, ts=time.time(), leader=self.leader, api=self.api,
                           leaving=leaving)
        await self.nc.publish(subjects.ORCHESTRATOR_ALIVE, msg.model_dump_json().encode())

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await self._beat()
            except Exception as exc:  # the bus reconnects; the next beat goes out then
                log.debug("heartbeat not sent: %s", exc)

    # -- leadership -----------------------------------------------------------------------
    async def _lead(self) -> None:
        while True:
            try:
                if not self.leader:
                    if await self.locks.try_lock(LEADER_KEY):
                        self.leader, self.leader_since = True, time.time()
                        log.warning("replica %s leads (runs the singletons)", self.id)
                        await self._beat()
                        if self._on_leadership is not None:
                            await self._on_leadership(True)
                else:
                    await self.locks.ping()
            except LockSessionLost as exc:
                self._lose(exc)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("replica %s: leadership step failed", self.id)
            await asyncio.sleep(LEADER_POLL_S)

    def _lose(self, exc: Exception) -> None:
        if self._lost:
            return
        self._lost = True
        self.leader = False
        log.critical("replica %s lost its database lock session (%s): it holds no lock any "
                     "more and stops", self.id, exc)
        self._on_lost()
