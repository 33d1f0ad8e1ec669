"""Host names and addresses a user hands in (NATS servers, OpenFlow controller targets):
one pattern, one check."""

from __future__ import annotations

import ipaddress
import re

# A DNS name, an IPv4 address, or a bracketed IPv6 one (the RFC 3986 authority's host).
HOST_PATTERN = r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])"
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)", re.ASCII)


def canonical_host(host: str, part: str, what: str) -> str:
    """``host`` (matched by HOST_PATTERN) in canonical form (lower case; addresses as
    ipaddress writes them), or ValueError naming ``what`` and ``part``: an IPv4 address
    must be a real one (999.1.1.1, 1.2.3 and leading zeros are not), a bracketed one a real
    IPv6 address, a name RFC 1123 labels whose last is not all digits (so a mistyped
    dotted quad is not taken for a name)."""
    if host.startswith("["):
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1])}]"
        except ValueError:
            raise ValueError(f"{what} host is not an IPv6 address: {part[:80]!r}") from None
    labels = host.split(".")
    if labels[-1].isdigit():
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise ValueError(f"{what} host is not an IPv4 address: {part[:80]!r}") from None
    if len(host) > 253 or not all(_LABEL.fullmatch(lab) for lab in labels):
        raise ValueError(f"{what} host is not a DNS name (labels of 1-63 a-z 0-9 -, not "
                         f"starting or ending with -): {part[:80]!r}")
    return host.lower()
