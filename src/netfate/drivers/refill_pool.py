"""A pool of pre-made entries, refilled in the background: what the pool of pre-made NF
namespaces (nf_pool) and the pool of pre-made containers (container_pool) share. SOCK and
Catalyzer start sandboxes by handing out pre-made ones; the work of making one leaves the
critical path and happens here, in a thread of its own, after each hand-out.

Entries are made by ``make(name)`` and destroyed by ``destroy(entry)``, the caller's; this
module only keeps, names and refills them. They are kept in the order made, handed out
once, first made first (`take`), and never taken back. Each take wakes the refill thread,
which makes entries up to `size` again (`fill`, which a caller may also run itself as a
warm-up: the two count the entries being made, so together they never make more than
`size`). Closing stops the thread and destroys what the pool holds.

Names: `<prefix><pid>-<n>` (n = 1, 2, ... per pool), so the entries of a process that has
ended can be told from those of a live pool (nf_pool.orphans).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Refill:
    """How a pool refills and closes, the part that differs between pools (times in s)."""

    thread_name: str  # the refill thread's name
    what: str  # the pool in a failed refill's warning: "<what>: refill failed: <error>"
    log: logging.Logger  # where that warning goes
    busy_wait: float  # a filler's sleep, before looking again, while another makes the rest
    join_timeout: float  # how long close waits for the refill thread
    delay: float = 0.0  # the refill thread's wait after being woken, before it fills
    nice: int | None = None  # the refill thread's nice value (None: left as it is)
    quiet_close: bool = False  # close goes on past an entry it fails to destroy (else: raises)


class RefillPool(Generic[T]):
    """Up to ``size`` entries of type T named ``<prefix><pid>-<n>``, refilled by a daemon
    thread as ``how`` says. ``make(name)`` builds one and returns it, or raises having left
    nothing; ``destroy(entry)`` removes one."""

    def __init__(self, prefix: str, size: int, make: Callable[[str], T],
                 destroy: Callable[[T], None], how: Refill) -> None:
        self.prefix = prefix
        self.size = max(0, size)
        self._make = make
        self._destroy = destroy
        self._how = how
        self._entries: list[T] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._seq = 0
        self._making = 0  # entries being made now (by the refill thread or fill())
        self._thread: threading.Thread | None = None
        if self.size:
            self._thread = threading.Thread(target=self._refill, name=how.thread_name,
                                            daemon=True)
            self._thread.start()
            self._wake.set()

    def entries(self) -> list[T]:
        """The entries the pool holds now, oldest first (a copy)."""
        with self._lock:
            return list(self._entries)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def take(self) -> T | None:
        """An entry, or None when the pool is empty (the caller makes its own); the pool
        starts refilling."""
        with self._lock:
            entry = self._entries.pop(0) if self._entries else None
        self._wake.set()
        return entry

    def fill(self) -> None:
        """Fill the pool now, in this thread (a warm-up; the refill thread does the same).
        Raises what ``make`` raises."""
        while not self._closed:
            with self._lock:
                if len(self._entries) >= self.size:
                    return
                busy = len(self._entries) + self._making >= self.size
                if not busy:
                    self._seq += 1
                    self._making += 1
                    name = f"{self.prefix}{os.getpid()}-{self._seq}"
            if busy:  # the rest is being made by the other filler: wait for it
                time.sleep(self._how.busy_wait)
                continue
            try:
                entry = self._make(name)
            finally:
                with self._lock:
                    self._making -= 1
            with self._lock:
                if not self._closed:
                    self._entries.append(entry)
                    continue
            self._destroy(entry)  # made while closing: nobody will take it
            return

    def _refill(self) -> None:
        how = self._how
        if how.nice is not None:
            with contextlib.suppress(OSError):  # per thread on Linux; its children inherit it
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), how.nice)
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            if how.delay:
                time.sleep(how.delay)
                if self._closed:
                    return
            try:
                self.fill()
            except Exception as exc:  # keep serving; a create then makes its own entry
                how.log.warning("%s: refill failed: %s", how.what, exc)

    def close(self) -> None:
        """Stop refilling and destroy the entries (idempotent)."""
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self._how.join_timeout)
        with self._lock:
            entries, self._entries = self._entries, []
        for e in entries:
            if self._how.quiet_close:
                with contextlib.suppress(Exception):
                    self._destroy(e)
            else:
                self._destroy(e)
