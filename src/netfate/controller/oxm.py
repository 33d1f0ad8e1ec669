"""OXM values as integers, so matches from our flows and from a switch's replies compare."""

from __future__ import annotations

import ipaddress
from typing import Any

_MAC_FIELDS = frozenset({"eth_src", "eth_dst", "arp_sha", "arp_tha"})
_IP_FIELDS = frozenset({"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"})
_WIDTH = {**{f: 48 for f in _MAC_FIELDS}, **{f: 32 for f in _IP_FIELDS}, "metadata": 64}

Canonical = int | tuple[int, int]


def to_int(name: str, v: Any) -> int:
    if name in _MAC_FIELDS:
        return int(str(v).replace(":", ""), 16)
    if name in _IP_FIELDS:
        return int(ipaddress.IPv4Address(v))
    return int(v)


def canonical(name: str, v: Any) -> Canonical:
    """A value, or (value & mask, mask); a mask of all ones is the same as no mask."""
    if isinstance(v, tuple | list):
        value, mask = to_int(name, v[0]), to_int(name, v[1])
        if mask == (1 << _WIDTH.get(name, 64)) - 1:
            return value
        return (value & mask, mask)
    return to_int(name, v)


def canonical_match(match: dict[str, Any]) -> tuple[tuple[str, Canonical], ...]:
    return tuple(sorted((k, canonical(k, v)) for k, v in match.items()))
