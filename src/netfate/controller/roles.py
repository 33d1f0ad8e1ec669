"""OpenFlow roles for several controllers (issue #15): every switch connects to every
controller; one is its master, the others slaves (OpenFlow 1.3.5 §6.3.7, OFPT_ROLE_REQUEST
with a generation id), so a dead master's switches are taken over without touching the
flows they forward with.

- Membership: each controller announces itself on the bus every ``HEARTBEAT_S`` s
  (``ControllerAlive``); one not heard from for ``DEAD_AFTER_S`` s is gone.
- Sharding: a switch's master among the live controllers is chosen by rendezvous
  (highest-random-weight) hashing of (controller, datapath id): every controller computes
  the same answer from the same membership, and when one dies only its switches move.
- A controller claims nothing in its first DEAD_AFTER_S s (it has not heard its peers yet),
  and a master claims its switches again every REASSERT_S s: OpenFlow 1.3 does not tell a
  master another controller's claim demoted it.
- Generation ids: microseconds of the wall clock, strictly increasing per controller. A new
  master's generation is larger than the one its predecessor sent (later in time on the same
  or a synchronised clock), so the switch accepts it and refuses the old master's stale
  requests (OFPRRFC_STALE).

Pure apart from the clock: the app (controller/app.py) sends the requests."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Sequence

HEARTBEAT_S = 1.0
DEAD_AFTER_S = 3.5
REASSERT_S = 5.0  # a master claims its switches again this often
MAX_PEERS = 64  # heartbeats from more ids than this are ignored (see Membership.beat)
CONTROLLER_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,30}", re.ASCII)


def check_id(cid: str) -> str:
    """``cid`` if it is a controller id (lower-case letters, digits, '-'; 1-31 characters);
    else ValueError naming it."""
    if not CONTROLLER_ID.fullmatch(cid):
        raise ValueError(f"controller id must be 1-31 of a-z, 0-9, '-': {cid[:40]!r}")
    return cid


def _weight(controller: str, dpid: int) -> bytes:
    return hashlib.sha256(f"{controller}/{dpid:016x}".encode()).digest()


def master_for(dpid: int, members: Sequence[str]) -> str | None:
    """The master of switch ``dpid`` among ``members`` (None if there are none)."""
    return max(members, key=lambda c: _weight(c, dpid), default=None)


class Membership:
    """The live controllers as this one sees them (itself always included). Thread-safe:
    heartbeats arrive on the bus thread, the app reads on its own."""

    def __init__(self, me: str, dead_after: float = DEAD_AFTER_S) -> None:
        self.me = me
        self.dead_after = dead_after
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def beat(self, controller: str, now: float | None = None) -> None:
        """A heartbeat from ``controller`` at ``now`` (monotonic seconds). The dead are
        forgotten here, and a new id beyond MAX_PEERS live ones is ignored: heartbeats with
        made-up ids must not grow this without bound (issue #16, bounded state)."""
        t = time.monotonic() if now is None else now
        with self._lock:
            for c in [c for c, at in self._seen.items() if t - at > self.dead_after]:
                del self._seen[c]
            if controller in self._seen or len(self._seen) < MAX_PEERS:
                self._seen[controller] = t

    def members(self, now: float | None = None) -> list[str]:
        t = time.monotonic() if now is None else now
        with self._lock:
            live = {c for c, at in self._seen.items() if t - at <= self.dead_after}
        return sorted(live | {self.me})


class Generations:
    """Strictly increasing 64-bit generation ids from the wall clock (µs)."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(time.time_ns() // 1000, self._last + 1)
            return self._last
