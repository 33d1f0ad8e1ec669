"""Stable Framed-IP-Addresses: a user who has none gets one from the pool, chosen from a
hash of their name (so the same name lands on the same address in a fresh database), moving
on to the next free address when it is taken. It is then stored with the user, and they keep
it at every access node."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Collection, Iterator

from netfate.errors import Conflict


def candidates(user: str, pool: str) -> Iterator[str]:
    """Every usable address of the pool (no network or broadcast address), starting at the
    one the user's name hashes to."""
    net = ipaddress.IPv4Network(pool)
    size = net.num_addresses - 2
    if size < 1:
        raise ValueError(f"pool {pool} has no usable addresses")
    digest = hashlib.sha256(user.encode("utf-8")).digest()
    start = int.from_bytes(digest[:8], "big") % size
    first = int(net.network_address) + 1
    for i in range(size):
        yield str(ipaddress.IPv4Address(first + (start + i) % size))


def pick_address(user: str, pool: str, taken: Collection[str]) -> str:
    """The first of the user's candidates that nobody has. Conflict if the pool is full."""
    for ip in candidates(user, pool):
        if ip not in taken:
            return ip
    raise Conflict(f"the Framed-IP pool {pool} is exhausted; widen NETFATE_RADIUS_POOL")
