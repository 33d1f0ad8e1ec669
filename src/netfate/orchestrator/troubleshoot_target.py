"""A troubleshooting question (POST /api/v1/troubleshoot's body), checked: the Target."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from netfate import validators
from netfate.errors import InvalidInput

_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")


@dataclass(frozen=True)
class Target:
    user: str | None
    destination: str | None
    port: int | None = None
    seconds: int = 3
    packets: int = 50
    timeout_s: float = 25.0


def check_target(body: dict[str, Any]) -> Target:
    """The request body as a Target. InvalidInput naming what is wrong."""
    user, dest = body.get("user"), body.get("destination")
    if user is None and dest is None:  # both: the user's complaint about reaching dest
        raise InvalidInput("give a user, a destination, or both")
    if user is not None and (not isinstance(user, str) or not user or len(user) > 64):
        raise InvalidInput("user: a name of 1-64 characters")
    if user is not None:
        try:  # a user's name (netfate.validators: "user1\n" is none, nor is "user1\x00")
            validators.name(user)
        except ValueError as exc:
            raise InvalidInput(f"user: {exc}") from None
    if dest is not None:
        try:  # ASCII digits, no leading zeros, whole (netfate.validators)
            ip = ipaddress.IPv4Address(validators.ipv4(dest))
        except ValueError:
            raise InvalidInput(f"destination {dest!r} is not an IPv4 address") from None
        # 0.0.0.0/8 is "this network": no host answers a probe there.
        if ip.is_multicast or ip in _THIS_NETWORK or ip.is_loopback or ip.is_reserved:
            raise InvalidInput(f"destination {dest}: not a unicast address")
        dest = str(ip)
    port = body.get("port")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool)
                             or not 1 <= port <= 65535):
        raise InvalidInput(f"port {port!r}: must be 1-65535")
    seconds, packets = body.get("seconds", 3), body.get("packets", 50)
    if not isinstance(seconds, int) or isinstance(seconds, bool) or not 1 <= seconds <= 30:
        raise InvalidInput("seconds: the capture's duration, 1-30")
    if not isinstance(packets, int) or isinstance(packets, bool) or not 1 <= packets <= 1000:
        raise InvalidInput("packets: the capture's bound, 1-1000")
    timeout = body.get("timeout_s", 25.0)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) \
            or not 1 <= timeout <= 120:
        raise InvalidInput("timeout_s: the question's bound, 1-120 seconds")
    return Target(user, dest, port, seconds, packets, float(timeout))
