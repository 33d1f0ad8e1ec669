"""asyncio locks for the coordinator: a shared/exclusive gate and per-key locks."""

from __future__ import annotations

import asyncio
from collections import deque


class Gate:
    """Many shared holders or one exclusive holder, granted in arrival order: a waiting
    exclusive holder goes before shared ones that come after it (no starvation).

    Release is synchronous, so a task can release in a `finally` even while cancelled."""

    def __init__(self) -> None:
        self._shared = 0
        self._exclusive = False
        self._waiters: deque[tuple[bool, asyncio.Future[None]]] = deque()

    @property
    def shared(self) -> int:
        return self._shared

    @property
    def exclusive(self) -> bool:
        return self._exclusive

    def _free_for(self, exclusive: bool) -> bool:
        if exclusive:
            return not self._exclusive and self._shared == 0
        return not self._exclusive

    def _take(self, exclusive: bool) -> None:
        if exclusive:
            self._exclusive = True
        else:
            self._shared += 1

    async def acquire(self, exclusive: bool) -> None:
        if not self._waiters and self._free_for(exclusive):
            self._take(exclusive)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((exclusive, fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(exclusive)  # granted, but the waiter was cancelled meanwhile
            else:
                self._grant()  # it may have been first in line
            raise

    def release(self, exclusive: bool) -> None:
        if exclusive:
            if not self._exclusive:
                raise RuntimeError("gate released exclusively but not held so")
            self._exclusive = False
        else:
            if self._shared <= 0:
                raise RuntimeError("gate released shared but not held so")
            self._shared -= 1
        self._grant()

    def _grant(self) -> None:
        while self._waiters:
            exclusive, fut = self._waiters[0]
            if fut.done():  # cancelled while waiting
                self._waiters.popleft()
                continue
            if not self._free_for(exclusive):
                return
            self._waiters.popleft()
            self._take(exclusive)
            fut.set_result(None)


class KeyedLocks:
    """One asyncio.Lock per key, forgotten when no task holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    def __contains__(self, key: str) -> bool:
        """Whether a task holds or waits for the key's lock."""
        return key in self._locks

    async def acquire(self, key: str) -> None:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            await lock.acquire()
        except BaseException:
            self._forget(key)
            raise

    def release(self, key: str) -> None:
        lock, _ = self._locks[key]
        lock.release()
        self._forget(key)

    def _forget(self, key: str) -> None:
        lock, users = self._locks[key]
        if users <= 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, users - 1)

    def locked(self, key: str) -> bool:
        entry = self._locks.get(key)
        return entry is not None and entry[0].locked()
