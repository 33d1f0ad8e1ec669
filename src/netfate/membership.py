"""Who is alive among several processes of one kind, and which of them owns a key: the
shared part of the SDN controllers' OpenFlow roles and the orchestrator replicas' partitions
(issue #15).

- Membership: each process announces itself on the bus every ``HEARTBEAT_S`` s; one not heard
  from for ``DEAD_AFTER_S`` s is gone.
- Ownership by rendezvous (highest-random-weight) hashing of (member, key) (Thaler and
  Ravishankar, "A name-based mapping scheme for rendezvous", 1996): every member computes the
  same owner from the same membership, and when one dies only its keys move.

Pure apart from the clock."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Sequence

HEARTBEAT_S = 1.0
DEAD_AFTER_S = 3.5
MAX_PEERS = 64  # heartbeats from more ids than this are ignored (see Membership.beat)
MEMBER_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,30}", re.ASCII)


def check_id(mid: str, what: str = "member id") -> str:
    """``mid`` if it is a member id (lower-case letters, digits, '-'; 1-31 characters);
    else ValueError naming it."""
    if not MEMBER_ID.fullmatch(mid):
        raise ValueError(f"{what} must be 1-31 of a-z, 0-9, '-': {mid[:40]!r}")
    return mid


def weight(member: str, key: str) -> bytes:
    """The rendezvous weight of ``member`` for ``key`` (sha256 of both)."""
    return hashlib.sha256(f"{member}/{key}".encode()).digest()


def owner_of(key: str, members: Sequence[str]) -> str | None:
    """The owner of ``key`` among ``members`` (None if there are none)."""
    return max(members, key=lambda m: weight(m, key), default=None)


class Membership:
    """The live members as this one sees them (itself always included). Thread-safe:
    heartbeats may arrive on a bus thread while another thread reads."""

    def __init__(self, me: str, dead_after: float = DEAD_AFTER_S) -> None:
        self.me = me
        self.dead_after = dead_after
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def beat(self, member: str, now: float | None = None) -> None:
        """A heartbeat from ``member`` at ``now`` (monotonic seconds). The dead are
        forgotten here, and a new id beyond MAX_PEERS live ones is ignored: heartbeats with
        made-up ids must not grow this without bound (issue #16, bounded state)."""
        t = time.monotonic() if now is None else now
        with self._lock:
            for c in [c for c, at in self._seen.items() if t - at > self.dead_after]:
                del self._seen[c]
            if member in self._seen or len(self._seen) < MAX_PEERS:
                self._seen[member] = t

    def forget(self, member: str) -> None:
        """``member`` said it is leaving (a clean stop): its keys move at once."""
        with self._lock:
            self._seen.pop(member, None)

    def members(self, now: float | None = None) -> list[str]:
        t = time.monotonic() if now is None else now
        with self._lock:
            live = {c for c, at in self._seen.items() if t - at <= self.dead_after}
        return sorted(live | {self.me})
