"""Rate limiting of wrong passwords, per client (its MAC, RADIUS Calling-Station-Id) and per
account (the User-Name), each with a FailureLimiter of its own.

After ``max_failures`` failed logins within ``window`` seconds, a key is refused for
``backoff`` seconds, without its password being checked. A successful login clears its
record. Memory is bounded: at most ``max_keys`` keys are remembered; when full, records
with nothing left to say go first, then the least recently seen ones.

Per client alone is not enough: a device can change its MAC (randomised MACs) and try again,
so the account it guesses at is limited too, whichever MAC tries (OWASP's "account lockout";
NIST SP 800-63B 5.2.2 asks for a limit of failed attempts on the account). The price is that
someone guessing can lock the account's owner out for ``backoff`` seconds; the account's
limit is therefore looser than the device's, and the lock ends by itself.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

_HEX = re.compile(r"[^0-9a-f]")


def client_key(calling_station_id: str | None, nas_id: str | None) -> str:
    """The rate limiter's key for a client: its MAC, normalised (RFC 3580 writes
    ``AA-BB-CC-DD-EE-FF``; ``aa:bb:...`` and ``aabb.ccdd.eeff`` are the same MAC), or the
    Calling-Station-Id as given if it is not a MAC. Without one, every such client of the
    same NAS shares one key, so they can't dodge the limit by leaving it out."""
    if calling_station_id:
        digits = _HEX.sub("", calling_station_id.lower())
        if len(digits) == 12:
            return "mac:" + ":".join(digits[i:i + 2] for i in range(0, 12, 2))
        return "csid:" + calling_station_id[:64]
    return "nas:" + (nas_id or "")[:64]


def account_key(user: str) -> str:
    """The rate limiter's key for an account: its name as logged in with (case-folded, so
    "User1" and "user1" share one record; at most 253 bytes, a RADIUS attribute's limit)."""
    return "user:" + user.casefold()[:253]


@dataclass
class _Record:
    failures: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0


class FailureLimiter:
    """Thread-safe; ``clock`` is monotonic seconds (injectable for tests)."""

    def __init__(self, max_failures: int = 5, window: float = 60.0, backoff: float = 60.0,
                 max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        if max_failures < 1 or window <= 0 or backoff < 0 or max_keys < 1:
            raise ValueError("max_failures >= 1, window > 0, backoff >= 0, max_keys >= 1")
        self.max_failures = max_failures
        self.window = window
        self.backoff = backoff
        self.max_keys = max_keys
        self.clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._records)

    def retry_after(self, key: str) -> int | None:
        """Whole seconds until ``key`` may try again, or None if it may now."""
        with self._lock:
            rec = self._records.get(key)
            if rec is None:
                return None
            left = rec.blocked_until - self.clock()
            return max(1, math.ceil(left)) if left > 0 else None

    def failure(self, key: str) -> int | None:
        """Record a failed login; the seconds of back-off if this one starts it."""
        with self._lock:
            now = self.clock()
            rec = self._records.get(key)
            if rec is None:
                self._make_room(now)
                rec = self._records[key] = _Record()
            else:
                self._records.move_to_end(key)
            self._expire(rec, now)
            rec.failures.append(now)
            if len(rec.failures) >= self.max_failures:
                rec.failures.clear()
                rec.blocked_until = now + self.backoff
                return max(1, math.ceil(self.backoff)) if self.backoff > 0 else None
            return None

    def success(self, key: str) -> None:
        with self._lock:
            self._records.pop(key, None)

    def _expire(self, rec: _Record, now: float) -> None:
        while rec.failures and rec.failures[0] <= now - self.window:
            rec.failures.popleft()

    def _make_room(self, now: float) -> None:
        if len(self._records) < self.max_keys:
            return
        for key in list(self._records):  # oldest first; drop the ones that say nothing now
            rec = self._records[key]
            self._expire(rec, now)
            if not rec.failures and rec.blocked_until <= now:
                del self._records[key]
        while len(self._records) >= self.max_keys:
            self._records.popitem(last=False)
