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
    """Counts user events in flight against `limit` (0: no limit)."""

    def __init__(self, limit: int = 0, retry_after: float = 1.0) -> None:
        self.limit = limit
        self.retry_after = retry_after
        self.in_flight = 0
        self.refused = 0

    def check(self, what: str) -> None:
        """Raise Overloaded (and count it) when `limit` events are in flight; else nothing.
        Only a check: the coordinator counts the event in once it takes it."""
        if self.limit and self.in_flight >= self.limit:
            self.refused += 1
            REGISTRY.inc(EVENTS_REFUSED, where="orchestrator")
            raise Overloaded(f"{what}: the orchestrator has {self.in_flight} events in flight "
                             f"(its limit, max_events_in_flight); retry after "
                             f"{self.retry_after:g} s", self.retry_after)

    def enter(self) -> None:
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)
