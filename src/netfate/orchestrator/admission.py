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


# Events a quiet orchestrator admits at once before the gradient has seen any latency: at
# ~30 ms of CPU each, 8 finish within ~250 ms on one core (32 took ~900 ms: the p99 of a
# run at twice capacity was that first burst's; bench control-plane, 2026-12-06).
BURST = 8


class Admission:
    """Counts user events in flight against a limit, the smallest of three:

    - `limit` (max_events_in_flight; 0: no limit at all);
    - Little's law (in flight = throughput x latency): no more than the recent throughput
      finishes within `target_s`, but at least `floor`, so an idle orchestrator takes a
      burst and throughput can grow;
    - a latency gradient (`Gradient`): fewer when events take longer than they do
      unloaded, so what is admitted at overload keeps about its unloaded latency.

    Events past it wait in no queue: they are refused."""

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
        self.gradient = Gradient(initial=min(floor, BURST))
        self._count = 0
        self._since = time.monotonic()

    def current_limit(self) -> int:
        """Events that may be in flight now (0: no limit)."""
        if not self.limit:
            return 0
        self._tick()
        little = max(self.floor, math.ceil(self.rate * self.target_s))
        return min(self.limit, little, self.gradient.limit())

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

    def enter(self) -> float:
        """Count an event in; the time it entered (time.monotonic, s), for `leave`."""
        self.in_flight += 1
        return time.monotonic()

    def leave(self, entered: float | None = None) -> None:
        """Count an event out. `entered` (what `enter` returned) for an event that ran to
        its end: its time in flight feeds the gradient (an event that failed before its
        plan ran says nothing about load)."""
        self.in_flight = max(0, self.in_flight - 1)
        self._count += 1
        self._tick()
        if entered is not None:
            self.gradient.maximum = self.limit or 1_000_000
            self.gradient.sample(time.monotonic() - entered, self.in_flight + 1)

    def _tick(self) -> None:
        now = time.monotonic()
        span = now - self._since
        if span >= self.WINDOW_S:
            r = self._count / span
            self.rate = r if self.rate == 0.0 else (self.rate + r) / 2
            self._count, self._since = 0, now


class Gradient:
    """A concurrency limit that follows latency, after TCP Vegas and Netflix
    concurrency-limits' Gradient2: with `short` the recent time in flight (exponential
    average over SHORT_N events, s) and `long` the usual one (the shortest seen), each
    event that ends sets

        limit <- limit x (1 - SMOOTHING) + (limit x gradient + QUEUE) x SMOOTHING,
        gradient = clamp(TOLERANCE x long / short, 0.5, 1),

    so the limit grows slowly while events take about their usual time and shrinks
    (towards QUEUE / (1 - 0.5) = 2 at the most) once queueing makes them more than
    TOLERANCE times longer. An event that ended with the limit less than half used says
    nothing about capacity: the limit then grows back by one toward `initial` (a quiet
    orchestrator takes a burst again), and `long` drifts up toward it (1/LONG_N per
    event), so a slower kind of event (a VM's start) becomes the usual while load is low.

    Slow agents lengthen events too, not only the orchestrator's own queueing; the
    gradient is relative (a node that is always slow is its own usual), and the limit
    never goes below `minimum`."""

    TOLERANCE = 2.0   # events may take this many times their usual time before it shrinks
    SMOOTHING = 0.2
    QUEUE = 1.0       # events let in beyond what the gradient keeps
    SHORT_N = 10      # events in the short average (EWMA weight 1/SHORT_N)
    LONG_N = 500

    def __init__(self, initial: int = 32, minimum: int = 2, maximum: int = 1_000_000) -> None:
        self.initial = initial
        self.minimum = minimum
        self.maximum = maximum
        self.value = float(initial)
        self.short = 0.0
        self.long = 0.0

    def limit(self) -> int:
        return max(self.minimum, int(self.value))

    def sample(self, seconds: float, in_flight: int) -> None:
        """One event ended after `seconds` in flight, with `in_flight` events (itself
        included) in flight just before it ended."""
        if seconds <= 0:
            return
        if self.short == 0.0:
            self.short = self.long = seconds
        self.short += (seconds - self.short) / self.SHORT_N
        if in_flight < self.value / 2:
            # Not limited by us: nothing learnt about capacity, but the usual time may
            # drift up to this; the limit grows back toward `initial`.
            self.long = min(seconds, self.long + (seconds - self.long) / self.LONG_N)
            self.value = max(self.value, min(self.value + 1, float(self.initial)))
            return
        self.long = min(self.long, seconds)
        gradient = max(0.5, min(1.0, self.TOLERANCE * self.long / self.short))
        new = self.value * gradient + self.QUEUE
        self.value = self.value * (1 - self.SMOOTHING) + new * self.SMOOTHING
        self.value = max(float(self.minimum), min(float(self.maximum), self.value))
