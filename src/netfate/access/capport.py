"""CAPPORT: the captive portal API (RFC 8908) and what the portal remembers of its logins.

A device learns the API's URL from DHCP option 114 (RFC 8910; dnsmasq announces it) and asks
it, with `Accept: application/captive+json`, whether it is captive:

    {"captive": true,  "user-portal-url": "http://10.90.16.1/login"}
    {"captive": false, "user-portal-url": "...", "seconds-remaining": 3542}

`seconds-remaining` (RFC 8908 section 5) is given when the session has an end: the RADIUS
Session-Timeout of the login. Pure but for the clock, which is injected.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MEDIA_TYPE = "application/captive+json"  # RFC 8908 section 5


@dataclass(frozen=True)
class Login:
    user: str
    at: float  # the clock's time of the Access-Accept
    session_timeout: int | None  # seconds (RADIUS Session-Timeout), None: no end


class Logins:
    """The portal's recent logins by device MAC, at most ``max_devices`` (the oldest go).
    Thread-safe. ``grace`` seconds: how long a fresh login counts as logged in on its own,
    before the orchestrator has recorded the session."""

    def __init__(self, *, grace: float = 30.0, max_devices: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.grace = grace
        self.max_devices = max_devices
        self.clock = clock
        self._by_mac: OrderedDict[str, Login] = OrderedDict()
        self._lock = threading.Lock()

    def accepted(self, mac: str, user: str, session_timeout: int | None) -> None:
        with self._lock:
            self._by_mac.pop(mac, None)
            self._by_mac[mac] = Login(user, self.clock(), session_timeout)
            while len(self._by_mac) > self.max_devices:
                self._by_mac.popitem(last=False)

    def forget(self, mac: str) -> None:
        with self._lock:
            self._by_mac.pop(mac, None)

    def get(self, mac: str) -> Login | None:
        with self._lock:
            return self._by_mac.get(mac)

    def fresh(self, mac: str, within: float | None = None) -> bool:
        """Logged in here within the grace period (or the last `within` seconds)."""
        login = self.get(mac)
        window = self.grace if within is None else min(within, self.grace)
        return login is not None and self.clock() - login.at < window

    def seconds_remaining(self, mac: str) -> int | None:
        login = self.get(mac)
        if login is None or login.session_timeout is None:
            return None
        return max(0, int(login.at + login.session_timeout - self.clock()))


def status(captive: bool, portal_url: str, seconds_remaining: int | None = None
           ) -> dict[str, Any]:
    """The RFC 8908 section 5 JSON object."""
    out: dict[str, Any] = {"captive": captive, "user-portal-url": portal_url}
    if not captive and seconds_remaining is not None:
        out["seconds-remaining"] = seconds_remaining
    return out
