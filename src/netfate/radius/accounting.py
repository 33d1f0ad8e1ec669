"""RADIUS accounting (RFC 2866): the records, their counters, and FreeRADIUS's detail file.

One login is one accounting session, named by its Acct-Session-Id, kept when the user roams
(the orchestrator carries it to the new node's session row). The orchestrator, which sees
every login, roam, idle and logout, sends for each:

- Start at login,
- Interim-Update every ``acct_interim_interval`` seconds (RFC 2869 Acct-Interim-Interval),
- Stop when it ends, with Acct-Terminate-Cause (Idle-Timeout, Session-Timeout,
  User-Request, Admin-Reset...),

each with the user's octets and packets so far, from the switches' per-user counters
(`UsageMeter`). "Input" is what the NAS received from the user (their upload), "output"
what it sent them (RFC 2866 5.3, 5.4); octets past 2^32 go in Acct-*-Gigawords (RFC 2869
5.1, 5.2).

    client = RadiusClient(host, acct_port, secret)
    send(client, AcctRecord("Start", sid, "user1", "cpe1", ...))
    read_detail(freeradius.detail_file)  # -> [{"Acct-Status-Type": "Start", ...}, ...]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pyrad import packet  # type: ignore[import-untyped]

from netfate.radius.client import RadiusClient, RadiusError

Status = Literal["Start", "Interim-Update", "Stop"]
TERMINATE_CAUSES = (
    "User-Request", "Lost-Carrier", "Lost-Service", "Idle-Timeout", "Session-Timeout",
    "Admin-Reset", "Admin-Reboot", "Port-Error", "NAS-Error", "NAS-Request", "NAS-Reboot",
    "Port-Unneeded", "Port-Preempted", "Port-Suspended", "Service-Unavailable", "Callback",
    "User-Error", "Host-Request")  # RFC 2866 5.10, in the dictionary's names
_U32 = 1 << 32


@dataclass(frozen=True)
class Usage:
    """A user's traffic: input = from the user (upload), output = to the user."""

    in_octets: int = 0
    in_packets: int = 0
    out_octets: int = 0
    out_packets: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.in_octets + other.in_octets, self.in_packets + other.in_packets,
                     self.out_octets + other.out_octets, self.out_packets + other.out_packets)

    def __neg__(self) -> Usage:
        return Usage(-self.in_octets, -self.in_packets, -self.out_octets, -self.out_packets)

    def most(self, other: Usage) -> Usage:
        """Each counter's larger value: a total never reported below one already sent."""
        return Usage(max(self.in_octets, other.in_octets),
                     max(self.in_packets, other.in_packets),
                     max(self.out_octets, other.out_octets),
                     max(self.out_packets, other.out_packets))

    def as_list(self) -> list[int]:
        """[in_octets, in_packets, out_octets, out_packets] (how the database keeps it)."""
        return [self.in_octets, self.in_packets, self.out_octets, self.out_packets]

    @classmethod
    def from_list(cls, v: Any) -> Usage:
        """From `as_list`'s shape; ValueError for anything else (a damaged row)."""
        if not isinstance(v, list | tuple) or len(v) != 4 or \
                not all(type(x) is int for x in v):
            raise ValueError(f"not four integer counters: {str(v)[:80]}")
        return cls(*v)

    def covers(self, other: Usage) -> bool:
        """Whether every counter is at least other's (no reset in between)."""
        return (self.in_octets >= other.in_octets and self.in_packets >= other.in_packets
                and self.out_octets >= other.out_octets
                and self.out_packets >= other.out_packets)


@dataclass
class UsageMeter:
    """One accounting session's usage, summed over the switches it went through.

    A switch reports cumulative counters of the user's flows there (`update`). They start at
    zero on each switch the user visits, and again when the flows are re-installed; a
    reading below the previous one is taken as such a reset: what was counted before is
    kept (`_base`). So the total only grows, across roams and flow rewrites. What a switch
    counted after its last report before the user left it is not seen (bounded by the
    controller's counter interval)."""

    _last: dict[str, Usage] = field(default_factory=dict)
    _base: dict[str, Usage] = field(default_factory=dict)

    def start_from(self, node: str, reading: Usage) -> None:
        """The switch had counted ``reading`` before this session began: not its usage."""
        self._last[node] = reading
        self._base[node] = -reading

    def update(self, node: str, reading: Usage) -> None:
        last = self._last.get(node)
        if last is not None and not reading.covers(last):
            self._base[node] = self._base.get(node, Usage()) + last
        self._last[node] = reading

    def to_json(self) -> dict[str, dict[str, list[int]]]:
        """The meter as the database keeps it (acct_open.meter)."""
        return {"last": {n: u.as_list() for n, u in self._last.items()},
                "base": {n: u.as_list() for n, u in self._base.items()}}

    @classmethod
    def from_json(cls, data: Any) -> UsageMeter:
        """From `to_json`'s shape; ValueError for anything else."""
        if not isinstance(data, dict):
            raise ValueError("a usage meter is an object")
        parts = []
        for key in ("last", "base"):
            part = data.get(key, {})
            if not isinstance(part, dict):
                raise ValueError(f"a usage meter's {key} is an object")
            parts.append({str(n): Usage.from_list(v) for n, v in part.items()})
        return cls(parts[0], parts[1])

    def total(self) -> Usage:
        out = Usage()
        for node, last in self._last.items():
            out = out + self._base.get(node, Usage()) + last
        return out


@dataclass(frozen=True)
class AcctRecord:
    """One Accounting-Request. ``session_time``: seconds since the login (Acct-Session-Time);
    ``cause`` for a Stop only (an Acct-Terminate-Cause name)."""

    status: Status
    session_id: str
    user: str
    nas_id: str
    mac: str | None = None
    ip: str | None = None
    session_time: int = 0
    usage: Usage = Usage()
    cause: str | None = None
    interim_interval: int | None = None

    def attributes(self) -> list[tuple[str, Any]]:
        """The request's attributes, in order; ValueError for a record that can't be one."""
        if not self.session_id or not self.user or not self.nas_id:
            raise ValueError("an accounting record needs a session id, a user and a NAS")
        if self.cause is not None and (self.status != "Stop" or
                                       self.cause not in TERMINATE_CAUSES):
            raise ValueError(f"Acct-Terminate-Cause {self.cause!r}: a Stop's, one of "
                             "RFC 2866 5.10")
        out: list[tuple[str, Any]] = [
            ("Acct-Status-Type", self.status), ("Acct-Session-Id", self.session_id),
            ("User-Name", self.user), ("NAS-Identifier", self.nas_id),
            ("Acct-Authentic", "RADIUS")]
        if self.mac:
            out.append(("Calling-Station-Id", self.mac))
        if self.ip:
            out.append(("Framed-IP-Address", self.ip))
        if self.status == "Start":
            if self.interim_interval:
                out.append(("Acct-Interim-Interval", self.interim_interval))
            return out
        u = self.usage
        out += [("Acct-Session-Time", max(0, self.session_time)),
                ("Acct-Input-Octets", u.in_octets % _U32),
                ("Acct-Input-Gigawords", (u.in_octets // _U32) % _U32),
                ("Acct-Output-Octets", u.out_octets % _U32),
                ("Acct-Output-Gigawords", (u.out_octets // _U32) % _U32),
                ("Acct-Input-Packets", u.in_packets % _U32),
                ("Acct-Output-Packets", u.out_packets % _U32)]
        if self.status == "Stop":
            out.append(("Acct-Terminate-Cause", self.cause or "NAS-Request"))
        return out


def send(client: RadiusClient, record: AcctRecord) -> float:
    """Send one Accounting-Request (with Message-Authenticator) and wait for its signed
    Accounting-Response. Returns the round trip in seconds; RadiusError/RadiusTimeout when
    none came (the server did not record it)."""
    req = packet.AcctPacket(code=packet.AccountingRequest, id=client.next_id(),
                            secret=client.secret, dict=client.dictionary,
                            message_authenticator=True)
    try:
        for key, value in record.attributes():
            req.AddAttribute(key, value)
    except (KeyError, ValueError, TypeError) as e:
        raise RadiusError(f"cannot encode the accounting record: {e}") from e
    reply, rtt = client.exchange(req)
    if reply.code != packet.AccountingResponse:
        raise RadiusError(f"unexpected reply code {reply.code} to an Accounting-Request")
    return rtt


_ATTR = re.compile(r"^\s+([A-Za-z0-9-]+) = (.*)$")


def read_detail(path: Path) -> list[dict[str, str]]:
    """The records of a FreeRADIUS detail file, oldest first: each a dict of attribute name
    to value (quotes removed; a repeated attribute keeps its last value). [] if the file is
    not there yet."""
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return []
    records: list[dict[str, str]] = []
    cur: dict[str, str] | None = None
    for line in text.splitlines():
        m = _ATTR.fullmatch(line)
        if m is None:
            if line.strip():  # a header: the time the record was written
                cur = {}
                records.append(cur)
            continue
        if cur is not None:
            value = m.group(2)
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            cur[m.group(1)] = value
    return records
