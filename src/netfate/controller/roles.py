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

import threading
import time
from collections.abc import Sequence

from netfate.membership import (
    DEAD_AFTER_S,
    HEARTBEAT_S,
    MAX_PEERS,
    MEMBER_ID,
    Membership,
    owner_of,
)
from netfate.membership import check_id as check_member_id

__all__ = ["DEAD_AFTER_S", "HEARTBEAT_S", "MAX_PEERS", "REASSERT_S", "Generations",
           "Membership", "check_id", "master_for"]

CONTROLLER_ID = MEMBER_ID
REASSERT_S = 5.0  # a master claims its switches again this often


def check_id(cid: str) -> str:
    """``cid`` if it is a controller id (lower-case letters, digits, '-'; 1-31 characters);
    else ValueError naming it."""
    return check_member_id(cid, "controller id")


def master_for(dpid: int, members: Sequence[str]) -> str | None:
    """The master of switch ``dpid`` among ``members`` (None if there are none)."""
    return owner_of(f"{dpid:016x}", members)


class Generations:
    """Strictly increasing 64-bit generation ids from the wall clock (µs)."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(time.time_ns() // 1000, self._last + 1)
            return self._last
