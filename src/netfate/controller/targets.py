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

import re

from netfate.hosts import HOST_PATTERN, canonical_host

MAX_TARGETS = 8
MAX_LEN = 1024  # characters, the whole list
_TARGET = re.compile(
    r"(?P<proto>tcp|ssl):"
    + HOST_PATTERN +
    r":(?P<port>[1-9][0-9]{0,4})",
    re.ASCII,
)
SHAPE = "tcp:HOST:PORT or ssl:HOST:PORT"


def _host(host: str, part: str) -> str:
    return canonical_host(host, part, "controller target's")


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
