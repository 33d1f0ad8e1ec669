"""Named event counters in the process, for what would otherwise pass unseen (a loop's failed
round, a refused registration). Plain and thread-safe; the observability work exports
`snapshot()` (e.g. to Prometheus) without the code that counts having to change.

A counter is a name plus labels (a few low-cardinality strings: the loop, the node), and only
goes up. `REGISTRY` is the process's registry; tests make their own `Counters()`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Labels = tuple[tuple[str, str], ...]

# The names used across the project, with their meaning (the help text of an exporter).
LOOP_FAILURES = "netfate_loop_failures_total"
REGISTRATIONS_REFUSED = "netfate_registrations_refused_total"
ENTRIES_SKIPPED = "netfate_switch_entries_skipped_total"
STATIONS_EVICTED = "netfate_stations_evicted_total"
EVENTS_REFUSED = "netfate_events_refused_total"
HELP = {
    LOOP_FAILURES: "Rounds of a long-running loop that failed (labels: loop)",
    REGISTRATIONS_REFUSED: "Agent registrations refused (orchestrator: answered; agent: got)",
    ENTRIES_SKIPPED: "Entries left out of a switch's state or flows because they were bad "
                     "(labels: where, node)",
    STATIONS_EVICTED: "Unauthenticated stations forgotten to stay within max_hosts "
                      "(labels: node, scope = port|node)",
    EVENTS_REFUSED: "User events refused past capacity (HTTP 429; orchestrator/admission.py)",
}


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: int


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, Labels], int] = {}

    @staticmethod
    def _key(name: str, labels: dict[str, str]) -> tuple[str, Labels]:
        return name, tuple(sorted(labels.items()))

    def inc(self, name: str, by: int = 1, **labels: str) -> int:
        """Add `by` (>= 0) to the counter; returns its new value. Raises ValueError on a
        negative `by` (counters only go up)."""
        if by < 0:
            raise ValueError(f"counter {name}: cannot add {by}")
        key = self._key(name, labels)
        with self._lock:
            value = self._values.get(key, 0) + by
            self._values[key] = value
        return value

    def value(self, name: str, **labels: str) -> int:
        """The counter's value (0 if it never counted)."""
        with self._lock:
            return self._values.get(self._key(name, labels), 0)

    def total(self, name: str) -> int:
        """The sum over every label set of `name`."""
        with self._lock:
            return sum(v for (n, _), v in self._values.items() if n == name)

    def snapshot(self) -> list[Sample]:
        """Every counter, sorted by name and labels; a copy, safe to use anywhere."""
        with self._lock:
            items = sorted(self._values.items())
        return [Sample(name, dict(labels), value) for (name, labels), value in items]


REGISTRY = Counters()


class LoopFailures:
    """Failures of one long-running loop: each is counted (LOOP_FAILURES, loop=<name>) and
    logged with its context and traceback. A failure that repeats the last one word for word
    is logged again only every `repeat_s` seconds (with how often it happened meanwhile), so
    a loop ticking every second while a peer is down neither hides the failure nor floods
    the log; the first success after failures is logged as a recovery."""

    def __init__(self, loop: str, logger: logging.Logger, registry: Counters | None = None,
                 repeat_s: float = 60.0) -> None:
        self.loop = loop
        self.log = logger
        self.registry = registry if registry is not None else REGISTRY
        self.repeat_s = repeat_s
        self._last_text = ""
        self._last_logged = 0.0
        self._unlogged = 0
        self._streak = 0

    def failed(self, what: str, exc: BaseException, now: float | None = None,
               trace: bool = True) -> None:
        """Count and (unless a recent repeat) log `what` failing with `exc`; with its
        traceback unless `trace` is False (a peer that is down: the line says it all)."""
        self.registry.inc(LOOP_FAILURES, loop=self.loop)
        self._streak += 1
        now = time.monotonic() if now is None else now
        text = f"{what}: {type(exc).__name__}: {exc}"
        if text == self._last_text and now - self._last_logged < self.repeat_s:
            self._unlogged += 1
            return
        again = f" (and {self._unlogged} more times)" if self._unlogged else ""
        self.log.warning("%s loop: %s%s", self.loop, text, again,
                         exc_info=exc if trace else None)
        self._last_text, self._last_logged, self._unlogged = text, now, 0

    def ok(self) -> None:
        """A round succeeded: logs the recovery if the previous rounds failed."""
        if self._streak:
            self.log.info("%s loop: working again after %d failed rounds", self.loop,
                          self._streak)
        self._streak, self._unlogged, self._last_text = 0, 0, ""


def task_failures(loop: str, logger: logging.Logger,
                  registry: Counters | None = None) -> Callable[[asyncio.Task[Any]], None]:
    """A done-callback for background tasks nobody awaits: a task that ended with an
    exception is counted (LOOP_FAILURES, loop=<loop>) and logged with its traceback, instead
    of surfacing, if ever, as "Task exception was never retrieved"."""
    reg = registry if registry is not None else REGISTRY

    def done(task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            reg.inc(LOOP_FAILURES, loop=loop)
            logger.error("%s: background task %s failed: %s: %s", loop, task.get_name(),
                         type(exc).__name__, exc, exc_info=exc)

    return done
