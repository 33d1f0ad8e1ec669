"""The coordinator's plan locks: one plan at a time per user, and node-wide or global plans
alone (a shared/exclusive gate). In one process they are asyncio locks (orchestrator/locks.py);
with replicas (issue #15) each is also a PostgreSQL advisory lock of the replica's session
(db/advisory.py), taken after the local one, so a user's plans run one at a time across every
replica and a replica's death releases its locks with its session.

Across replicas the advisory locks are polled (``pg_try_advisory_lock``), from 2 ms up to
``POLL_MAX_S`` apart: the replica's one lock session never blocks inside PostgreSQL."""

from __future__ import annotations

import asyncio
import logging

from netfate.db.advisory import AdvisoryLocks, key
from netfate.orchestrator.locks import Gate, KeyedLocks

log = logging.getLogger("netfate.coordinator")

GATE_KEY = key("netfate:plan-gate")
POLL_MIN_S = 0.002
POLL_MAX_S = 0.05


def _log_failure(t: asyncio.Task[None]) -> None:
    # A lost session has released the lock anyway (and the replica stops).
    if not t.cancelled() and t.exception() is not None:
        log.warning("advisory unlock failed: %s", t.exception())


def user_key(user: str) -> int:
    return key(f"netfate:user:{user}")


class PlanLocks:
    """Locks for one plan: the gate (shared for a user's plan, exclusive for a node-wide
    one) and, for a user's plan, the user's lock. ``shared`` (the replica's advisory-lock
    session) adds the same locks across replicas; None: this process only."""

    def __init__(self, shared: AdvisoryLocks | None = None) -> None:
        self.shared = shared
        self._gate = Gate()
        self._users = KeyedLocks()
        self._unlocks: set[asyncio.Task[None]] = set()

    def busy(self, user: str) -> bool:
        """A plan of ``user`` is being made or run here (or waits to be)."""
        return user in self._users

    async def acquire(self, user: str | None, exclusive: bool) -> None:
        """Until the gate (exclusive or shared) and ``user``'s lock (if any) are held."""
        await self._gate.acquire(exclusive)
        try:
            if user is not None:
                await self._users.acquire(user)
            try:
                await self._across(user, exclusive)
            except BaseException:
                if user is not None:
                    self._users.release(user)
                raise
        except BaseException:
            self._gate.release(exclusive)
            raise

    def release(self, user: str | None, exclusive: bool) -> None:
        """Give back what ``acquire`` took (synchronous: callable in a ``finally`` of a
        cancelled task; the advisory unlocks follow in the background, in order)."""
        if self.shared is not None:
            keys = [(user_key(user), False)] if user is not None else []
            self._unlock_later([*keys, (GATE_KEY, not exclusive)])
        if user is not None:
            self._users.release(user)
        self._gate.release(exclusive)

    # -- across replicas -------------------------------------------------------------------
    async def _across(self, user: str | None, exclusive: bool) -> None:
        if self.shared is None:
            return
        wait = POLL_MIN_S
        while not await self._try_across(user, exclusive):
            await asyncio.sleep(wait)
            wait = min(wait * 2, POLL_MAX_S)

    async def _try_across(self, user: str | None, exclusive: bool) -> bool:
        assert self.shared is not None
        if not await self.shared.try_lock(GATE_KEY, shared=not exclusive):
            return False
        if user is None or await self.shared.try_lock(user_key(user)):
            return True
        await self.shared.unlock(GATE_KEY, shared=not exclusive)
        return False

    def _unlock_later(self, keys: list[tuple[int, bool]]) -> None:
        shared = self.shared
        assert shared is not None

        async def unlock() -> None:
            for k, mode in keys:
                await shared.unlock(k, shared=mode)

        task = asyncio.ensure_future(unlock())
        self._unlocks.add(task)
        task.add_done_callback(self._unlocks.discard)
        task.add_done_callback(_log_failure)

    async def settle(self) -> None:
        """Until the advisory unlocks started so far have run (tests, stop)."""
        if self._unlocks:
            await asyncio.gather(*list(self._unlocks), return_exceptions=True)
