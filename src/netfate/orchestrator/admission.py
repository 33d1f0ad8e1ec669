"""Admission of user events past capacity (graceful overload).

An open-loop source (logins and roams through the API) can offer more events than the
orchestrator handles. Queued without bound, every event waits longer than the last, the
agents' command timeouts run out behind the backlog, and admitted work is rolled back for
lack of time. Here the events in flight (admitted, plan not yet run to its end) are
bounded: past the bound a new event is refused at once with a time to retry (HTTP 429 with
Retry-After, RFC 6585 section 4 and RFC 9110 section 10.2.3), and what was admitted keeps
its latency. The idea is the admission control of SEDA (Welsh et al., SOSP 2001) and
Kubernetes' API priority and fairness: refuse early and cheaply rather than time out late.
"""

from __future__ import annotations

import math
import time

from netfate.counters import EVENTS_REFUSED, REGISTRY
from netfate.errors import NetfateError


class Overloaded(NetfateError):
    """Too many events in flight: nothing was done; retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str:
        """Retry-After takes whole seconds (RFC 9110 section 10.2.3), at least 1."""
        return str(max(1, math.ceil(self.retry_after)))


class Admission:
    """Counts user events in flight against a limit: `limit` (0: none) at most, and, by
    Little's law (in flight = throughput x latency), no more than the recent throughput
    allows to finish within `target_s` (but at least `floor`, so an idle orchestrator takes
    a burst, and throughput can grow). Events past it wait in no queue: they are refused."""

    WINDOW_S = 1.0  # throughput measured over windows this long, smoothed (EWMA, 1/2)

    def __init__(self, limit: int = 0, retry_after: float = 1.0, target_s: float = 0.5,
                 floor: int = 32) -> None:
        self.limit = limit
        self.retry_after = retry_after
        self.target_s = target_s
        self.floor = floor
        self.in_flight = 0
        self.refused = 0
        self.rate = 0.0  # events finished per second, smoothed
        self._count = 0
        self._since = time.monotonic()

    def current_limit(self) -> int:
        """Events that may be in flight now (0: no limit)."""
        if not self.limit:
            return 0
        self._tick()
        return min(self.limit, max(self.floor, math.ceil(self.rate * self.target_s)))

    def check(self, what: str) -> None:
        """Raise Overloaded (and count it) when the limit of events is in flight; else
        nothing. Only a check: the coordinator counts the event in once it takes it."""
        limit = self.current_limit()
        if limit and self.in_flight >= limit:
            self.refused += 1
            REGISTRY.inc(EVENTS_REFUSED, where="orchestrator")
            raise Overloaded(f"{what}: the orchestrator has {self.in_flight} events in flight "
                             f"(its limit now, for {self.rate:.0f} events/s finished and "
                             f"{self.target_s:g} s each at most; max_events_in_flight "
                             f"{self.limit}); retry after {self.retry_after:g} s",
                             self.retry_after)

    def enter(self) -> None:
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        self._count += 1
        self._tick()

    def _tick(self) -> None:
        now = time.monotonic()
        span = now - self._since
        if span >= self.WINDOW_S:
            r = self._count / span
            self.rate = r if self.rate == 0.0 else (self.rate + r) / 2
            self._count, self._since = 0, now
