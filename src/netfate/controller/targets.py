"""OpenFlow controller targets as a node's switch is given them (`netfate agent --controller`):
one or more, comma-separated, each ``tcp:HOST:PORT`` or ``ssl:HOST:PORT`` (OVS's active
connection syntax, ovs-vswitchd.conf.db(5), "Controller" table). Several share the switch
with OpenFlow roles (controller/roles.py).

    targets("tcp:10.0.0.1:6653,tcp:10.0.0.2:6653")  -> both, in order
    targets("ssl:[fd00::1]:6653")                     -> one, an IPv6 address in brackets

HOST is an IPv4 address, an IPv6 address in brackets or a DNS name (ovs-vswitchd resolves
names only when built with DNS support; an address always works). Nothing is stripped: a
blank or a newline anywhere is an error, not a part of a target that OVSDB would store."""

from __future__ import annotations

import ipaddress
import re

MAX_TARGETS = 8
MAX_LEN = 1024  # characters, the whole list
_TARGET = re.compile(
    r"(?P<proto>tcp|ssl):"
    r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])"
    r":(?P<port>[1-9][0-9]{0,4})",
    re.ASCII,
)
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)", re.ASCII)
SHAPE = "tcp:HOST:PORT or ssl:HOST:PORT"


def _host(host: str, part: str) -> str:
    """``host`` in canonical form (lower case; addresses as ipaddress writes them), or
    ValueError naming ``part``: an IPv4 address must be a real one (999.1.1.1, 1.2.3 and
    leading zeros are not), a bracketed one a real IPv6 address, a name RFC 1123 labels whose
    last is not all digits (a mistyped dotted quad is not taken for a name)."""
    if host.startswith("["):
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1])}]"
        except ValueError:
            raise ValueError(f"controller target's host is not an IPv6 address: "
                             f"{part[:80]!r}") from None
    labels = host.split(".")
    if labels[-1].isdigit():
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise ValueError(f"controller target's host is not an IPv4 address: "
                             f"{part[:80]!r}") from None
    if len(host) > 253 or not all(_LABEL.fullmatch(lab) for lab in labels):
        raise ValueError(f"controller target's host is not a DNS name (labels of 1-63 "
                         f"a-z 0-9 -, not starting or ending with -): {part[:80]!r}")
    return host.lower()


def targets(spec: str) -> list[str]:
    """The targets in ``spec``, as written, in order.

    Raises ValueError naming the target at fault: an empty list or target, more than
    MAX_TARGETS, a list longer than MAX_LEN characters, a target not of SHAPE (ASCII only,
    no blanks), a host that is no address or DNS name, a port outside 1-65535, or the same
    target twice (however written: ``tcp:H:1`` and ``tcp:h:1`` are one)."""
    if len(spec) > MAX_LEN:
        raise ValueError(f"controller target list longer than {MAX_LEN} characters")
    if spec == "":
        raise ValueError(f"no controller target given ({SHAPE})")
    parts = spec.split(",")
    if len(parts) > MAX_TARGETS:
        raise ValueError(f"{len(parts)} controller targets given; at most {MAX_TARGETS}")
    out: list[str] = []
    seen: set[tuple[str, str, int]] = set()
    for p in parts:
        m = _TARGET.fullmatch(p)
        if m is None:
            raise ValueError(f"not a controller target ({SHAPE}, PORT 1-65535): {p[:80]!r}")
        port = int(m.group("port"))
        if port > 65535:
            raise ValueError(f"controller target's port is out of range 1-65535: {p!r}")
        key = (m.group("proto"), _host(m.group("host"), p), port)
        if key in seen:
            raise ValueError(f"controller target given twice: {p!r}")
        seen.add(key)
        out.append(p)
    return out
