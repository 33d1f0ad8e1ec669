"""A scenario's timeline: each step said as it happens and kept with its time.

Shapes: `Say(t, msg)` is the caller's printer (t: seconds since the scenario's start);
`marker(timeline, say)` gives the scenario its `mark(msg)`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Say = Callable[[float, str], None]  # (seconds since the scenario's start, what happened)
Mark = Callable[[str], float]  # what happened -> time.monotonic() once it is said


def marker(timeline: list[tuple[float, str]], say: Say) -> Mark:
    """A scenario's `mark(msg)`, its clock started now: appends (seconds since then, rounded
    to the millisecond, msg) to `timeline`, says it (unrounded), and returns
    time.monotonic() after saying it (ddos times its phases from that)."""
    t0 = time.monotonic()

    def mark(msg: str) -> float:
        t = time.monotonic() - t0
        timeline.append((round(t, 3), msg))
        say(t, msg)
        return time.monotonic()

    return mark
