"""The CPE's local zone: the DNS names a CPE answers itself, without asking anyone.

Both of its resolvers answer these the same: the ordinary one (after login) and the captive
one (before login, access/captive_dns.py). So a device that looked a local name up before
logging in holds its real address, and reaches it at once after the login, even though its
browser keeps any answer about a minute whatever its TTL (Chromium's host cache, 60 s, for
the system resolver). Names outside the zone can only be answered by recursing, which the
captive resolver never does (no DNS tunnelling before login): it answers them with the
portal's address, TTL 0.

The zone is: the platform's names (``<x>.netfate``: the portal, the testbed's internet host;
the domain is authoritative, so other ``.netfate`` names are NXDOMAIN), plus the operator's
records (AccessSettings.local_records, ``name=ipv4`` pairs).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from netfate.errors import InvalidInput

# The platform's own domain: both resolvers answer it alone (--local), unknown names NXDOMAIN.
LOCAL_DOMAINS = ("netfate",)
MAX_RECORDS = 256

# RFC 1123 host names, ASCII only, lower case after normalising; at least two labels.
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_NAME = re.compile(rf"^{_LABEL}(\.{_LABEL})+$")


def check_name(name: str) -> str:
    """``name`` lower-cased, without a trailing dot. InvalidInput unless it is an ASCII host
    name of two labels or more (RFC 1123), at most 253 characters."""
    n = name.strip().lower().rstrip(".")
    if not n.isascii() or len(n) > 253 or not _NAME.fullmatch(n) \
            or n.rsplit(".", 1)[-1].isdigit():
        # an all-digit last label (RFC 3696 2): 10.1.2.3 would be a name shadowing an address
        raise InvalidInput(f"{name!r} is not a DNS host name (ASCII labels a-z 0-9 -, "
                           "two or more, the last not all digits, like intranet.example)")
    return n


def check_ipv4(name: str, ip: str) -> str:
    """``ip`` as ipaddress writes it. InvalidInput naming ``name`` unless it is an ASCII
    IPv4 address of a unicast host (not 0.0.0.0, loopback, multicast or reserved)."""
    if not ip.isascii():
        raise InvalidInput(f"{name}: {ip!r} is not an IPv4 address (ASCII digits only)")
    try:
        a = ipaddress.IPv4Address(ip.strip())
    except ValueError as exc:
        raise InvalidInput(f"{name}: {ip!r} is not an IPv4 address") from exc
    if a.is_unspecified or a.is_loopback or a.is_multicast or a.is_reserved:
        # 255.255.255.255 is reserved too: none of these is a host a device can reach
        raise InvalidInput(f"{name}: {a} is not a unicast host address")
    return str(a)


def parse_records(text: str) -> dict[str, str]:
    """``"a.example=10.1.2.3,b.example=10.1.2.4"`` -> {name: ipv4}. Empty text: {}.
    InvalidInput naming the bad pair, a repeated name, or more than MAX_RECORDS records."""
    out: dict[str, str] = {}
    for raw in (p.strip() for p in text.split(",")):
        if not raw:
            continue
        name, sep, ip = raw.partition("=")
        if not sep:
            raise InvalidInput(f"local record {raw!r} is not name=ipv4")
        n = check_name(name)
        if n in out:
            raise InvalidInput(f"local record {n} is given twice")
        out[n] = check_ipv4(n, ip)
    if len(out) > MAX_RECORDS:
        raise InvalidInput(f"{len(out)} local records: at most {MAX_RECORDS}")
    return out


def zone(platform: Mapping[str, str], operator: Mapping[str, str]) -> dict[str, str]:
    """The local zone's records: the platform's (``platform``, access.addressing.dns_records)
    and the operator's. The operator's may add names but not re-point the platform's own
    (the portal's name must stay the portal): InvalidInput naming the clash."""
    out = {check_name(n): check_ipv4(n, ip) for n, ip in platform.items()}
    for name, ip in operator.items():
        n = check_name(name)
        if n in out and out[n] != check_ipv4(n, ip):
            raise InvalidInput(f"local record {n}={ip} clashes with the platform's {n}="
                               f"{out[n]}")
        out[n] = check_ipv4(n, ip)
    return out
