"""How many notifications each NF on a node may send: a token bucket per NF (RATE_PER_S,
bursts of BURST), so one NF that floods (a packet inspector raising an alert per packet of
an attack, or a broken NF) can neither fill the orchestrator's database and event stream nor
delay the other NFs' notifications behind its own. What is over an NF's rate is dropped and
counted; once a second each NF's count goes on as one notification of type
`notifications-dropped` (source "agent", detail {"dropped", "rate_per_s", "burst"}), so the
operator sees that it happened and how much. The first BURST of a flood pass at once: the
closed loop still reacts to an attack's first alerts. Pure: the caller gives the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RATE_PER_S = 20.0
BURST = 100
SUMMARY_EVERY_S = 1.0
DROPPED = "notifications-dropped"


@dataclass
class _Bucket:
    tokens: float
    at: float
    dropped: int = 0
    nf: Any = None
    owner: Any = None


class NoteLimiter:
    def __init__(self, rate_per_s: float = RATE_PER_S, burst: int = BURST) -> None:
        self.rate, self.burst = rate_per_s, burst
        self._buckets: dict[str, _Bucket] = {}
        self._summed_at: float | None = None

    def admit(self, notes: list[dict[str, Any]], now: float, wall: float
              ) -> list[dict[str, Any]]:
        """The notes within their NF's rate, in order, then (at most once per
        SUMMARY_EVERY_S of `now`, a monotonic clock) one `notifications-dropped` note per
        NF that had some dropped, stamped `wall` (unix time)."""
        out = []
        for note in notes:
            key = str(note.get("nf_id") or "")
            b = self._buckets.get(key)
            if b is None:
                b = self._buckets[key] = _Bucket(float(self.burst), now)
            b.tokens = min(float(self.burst), b.tokens + max(0.0, now - b.at) * self.rate)
            b.at = now
            if b.tokens >= 1.0:
                b.tokens -= 1.0
                out.append(note)
            else:
                b.dropped += 1
                b.nf, b.owner = note.get("nf"), note.get("owner")
        if self._summed_at is None or now - self._summed_at >= SUMMARY_EVERY_S:
            self._summed_at = now
            out += self._summaries(wall)
            # NFs back at a full bucket are forgotten: the map holds only active senders
            self._buckets = {k: b for k, b in self._buckets.items()
                             if b.dropped or b.tokens + (now - b.at) * self.rate < self.burst}
        return out

    def _summaries(self, wall: float) -> list[dict[str, Any]]:
        out = []
        for key, b in self._buckets.items():
            if b.dropped:
                out.append({"nf_id": key or None, "nf": b.nf, "owner": b.owner,
                            "type": DROPPED, "severity": "warning", "source": "agent",
                            "detail": {"dropped": b.dropped, "rate_per_s": self.rate,
                                       "burst": self.burst},
                            "ts": wall})
                b.dropped = 0
        return out
