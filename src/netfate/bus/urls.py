"""NATS server lists as users write them: one URL, or several separated by commas (the
members of a NATS cluster, any of which a client may use; nats-server's own clustering,
https://docs.nats.io/running-a-nats-service/configuration/clustering).

    servers("nats://127.0.0.1:4222")                      -> ["nats://127.0.0.1:4222"]
    servers("nats://10.0.0.1:4222,nats://10.0.0.2:4222")  -> both, in order

Clients connect to the first they reach and reconnect to any other when it dies (nats-py
also learns the cluster's other members from the server's INFO)."""

from __future__ import annotations

import re

from netfate.hosts import HOST_PATTERN, canonical_host

MAX_SERVERS = 16
MAX_LEN = 2048
# scheme://host[:port], host a DNS name, an IPv4 address or a bracketed IPv6 one; no user,
# path or query (credentials never go in a URL that ends up in logs and /health).
_URL = re.compile(
    r"(nats|tls)://"
    + HOST_PATTERN +
    r"(?::(?P<port>[0-9]{1,5}))?",
    re.ASCII,
)
DEFAULT_PORT = 4222


def _host(host: str, part: str) -> str:
    return canonical_host(host, part, "NATS server")


def servers(spec: str) -> list[str]:
    """The server URLs in ``spec`` (comma-separated; blanks around commas ignored).

    Raises ValueError naming the part at fault: an empty list, more than 16 servers, a
    part that is not ``nats://host[:port]`` or ``tls://host[:port]`` (ASCII only), a host
    that is no IPv4/IPv6 address or DNS name, a port outside 1-65535, or the same server
    twice (however written: ``h`` and ``H:4222`` are one)."""
    if len(spec) > MAX_LEN:
        raise ValueError(f"NATS server list longer than {MAX_LEN} characters")
    parts = [p.strip() for p in spec.split(",")]
    if not parts or parts == [""]:
        raise ValueError("no NATS server given")
    if len(parts) > MAX_SERVERS:
        raise ValueError(f"{len(parts)} NATS servers given; at most {MAX_SERVERS}")
    out: list[str] = []
    seen: set[tuple[str, int]] = set()
    for p in parts:
        m = _URL.fullmatch(p)
        if m is None:
            raise ValueError(f"not a NATS server URL (nats://host[:port]): {p[:80]!r}")
        port = m.group("port")
        if port is not None and not 1 <= int(port) <= 65535:
            raise ValueError(f"NATS server port out of range 1-65535: {p!r}")
        key = (_host(m.group("host"), p), int(port) if port else DEFAULT_PORT)
        if key in seen:
            raise ValueError(f"NATS server given twice: {p!r}")
        seen.add(key)
        out.append(p)
    return out


def check(spec: str | None) -> str | None:
    """``spec`` unchanged if it is a valid server list (or None); else ValueError, as
    ``servers``. For settings and CLI validators."""
    if spec is not None:
        servers(spec)
    return spec
