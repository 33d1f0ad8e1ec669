"""Dynamic Authorization Extensions to RADIUS (RFC 5176): the server side (the NAS's).

A Disconnect-Request ends a user's session; a CoA-Request changes what it is authorised for.
Each is answered with an ACK or a NAK (Error-Cause, RFC 5176 3.5), both signed with a
Message-Authenticator. The orchestrator hosts the server (orchestrator/dae.py decides what a
request does), since it owns the sessions; it listens on loopback (``dae_host``,
``dae_port``, default 127.0.0.1:3799), like FreeRADIUS.

Refused without an answer (silently discarded, RFC 5176 3.3 and 5.1), and counted:

- a request from an address not in ``dae_clients`` (an unknown client);
- a request whose Request Authenticator does not check with the shared secret;
- a request without a valid Message-Authenticator (required, as for every packet here:
  the BlastRADIUS fix, CVE-2024-3596);
- anything that does not decode as a Disconnect- or CoA-Request.

A retransmission (same client, Identifier and Request Authenticator within DUP_WINDOW
seconds) gets the first answer again, not a second action (RFC 5080 2.2.2).

The CoA attributes this NAS acts on (anything else in a CoA-Request is NAKed with
Unsupported-Attribute, 401):

- ``Filter-Id`` (RFC 2865 5.11) = ``"nfs:<nf>,<nf>,..."``: the NFs of the user's current
  login, in chain order (``"nfs:"``: none), in place of their stored ones until the login
  ends (RFC 5176 3.1: the session's authorization changes, not the profile); NetFATE's
  mapping of "the name of the filter list for this user";
- ``Session-Timeout``, ``Idle-Timeout``: the session's new limits, in seconds.

Session identification (RFC 5176 3): User-Name, Acct-Session-Id, Calling-Station-Id,
Framed-IP-Address; every one given must match the session. NAS-Identifier, if given, must
name the node the user is at.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import struct
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from pyrad import packet  # type: ignore[import-untyped]

from netfate.radius.client import dictionary

log = logging.getLogger("netfate.radius.dae")

DUP_WINDOW = 30.0
MAX_PACKET = 4096
IDENTIFIERS = ("User-Name", "Acct-Session-Id", "Calling-Station-Id", "Framed-IP-Address")
# Attributes that may come along with either request and change nothing.
INFORMATIONAL = frozenset({"NAS-Identifier", "NAS-IP-Address", "Event-Timestamp",
                           "Message-Authenticator", "Proxy-State", "Acct-Terminate-Cause",
                           "Reply-Message"})
COA_CHANGES = frozenset({"Filter-Id", "Session-Timeout", "Idle-Timeout"})
NFS_PREFIX = "nfs:"
_NF_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")  # descriptor.py's NF names
MAX_SESSION_TIMEOUT = 2**31 - 1  # what the database's integer column holds (PostgreSQL)

# Error-Cause values (RFC 5176 3.5)
UNSUPPORTED_ATTRIBUTE = 401
MISSING_ATTRIBUTE = 402
NAS_IDENTIFICATION_MISMATCH = 403
INVALID_REQUEST = 404
INVALID_ATTRIBUTE_VALUE = 407
SESSION_CONTEXT_NOT_FOUND = 503
SESSION_CONTEXT_NOT_REMOVABLE = 504
RESOURCES_UNAVAILABLE = 506


@dataclass(frozen=True)
class DaeRequest:
    """A verified request. ``ids``: the session identification attributes given;
    ``nfs``: the NFs a CoA's Filter-Id names (None: not given)."""

    disconnect: bool
    ids: dict[str, str]
    nas_id: str | None = None
    nfs: tuple[str, ...] | None = None
    session_timeout: int | None = None
    idle_timeout: int | None = None
    unsupported: tuple[str, ...] = ()
    invalid: str = ""

    @property
    def kind(self) -> str:
        return "Disconnect" if self.disconnect else "CoA"


@dataclass(frozen=True)
class DaeResult:
    ok: bool
    error_cause: int | None = None
    message: str = ""


class Refused(Exception):
    """A request silently discarded; the message says why (for the log)."""


def parse_nfs(filter_ids: Iterable[str]) -> tuple[str, ...]:
    """The NFs of ``nfs:a,b`` Filter-Ids (their lists joined, in order); ValueError for a
    Filter-Id of another form, an empty NF name or one that is not an NF name (a descriptor's
    ``[a-z][a-z0-9-]{0,30}``, ASCII only)."""
    out: list[str] = []
    for f in filter_ids:
        if not f.startswith(NFS_PREFIX):
            raise ValueError(f"Filter-Id {f[:64]!r}: give {NFS_PREFIX}<nf>,<nf>,...")
        rest = f[len(NFS_PREFIX):].strip()
        names = [n.strip() for n in rest.split(",")] if rest else []
        if any(not n for n in names):
            raise ValueError(f"Filter-Id {f[:64]!r} has an empty NF name")
        bad = [n for n in names if not _NF_NAME.fullmatch(n)]
        if bad:
            raise ValueError(f"Filter-Id {f[:64]!r}: {bad[0][:40]!r} is not an NF name")
        out += names
    return tuple(out)


def decode(raw: bytes, secret: bytes) -> tuple[Any, DaeRequest]:
    """(the pyrad packet, the request) of a datagram; Refused if it must be dropped."""
    if len(raw) < 20 or len(raw) > MAX_PACKET:
        raise Refused("not a RADIUS packet (length)")
    if raw[0] not in (packet.DisconnectRequest, packet.CoARequest):
        raise Refused(f"code {raw[0]} is not a Disconnect- or CoA-Request")
    length = int.from_bytes(raw[2:4], "big")
    if length < 20 or length > len(raw):
        raise Refused("bad Length field")
    raw = raw[:length]
    try:
        pkt = packet.CoAPacket(packet=raw, secret=secret, dict=dictionary())
    except Exception as e:  # whatever an untrusted datagram makes the decoder raise
        raise Refused(f"undecodable ({type(e).__name__})") from e
    if not pkt.VerifyCoARequest():
        raise Refused("bad Request Authenticator (wrong shared secret?)")
    if not pkt.message_authenticator:
        raise Refused("no Message-Authenticator")
    try:
        good = pkt.verify_message_authenticator()
    except Exception:
        good = False
    if not good:
        raise Refused("bad Message-Authenticator")
    return pkt, _request(pkt)


class _Invalid(ValueError):
    """An attribute whose value does not decode as its type (NAK 407)."""


def _values(pkt: Any, name: str) -> list[Any]:
    """The decoded values of an attribute; _Invalid if one does not decode as its type (an
    integer or address of the wrong length, text that is not UTF-8: pyrad hands back the
    raw bytes then, which must never pass for a name)."""
    try:
        values = list(pkt.get(name) or [])
    except (ValueError, TypeError, UnicodeDecodeError, struct.error) as e:
        raise _Invalid(f"{name}: {e}") from None
    for v in values:
        if isinstance(v, bytes | bytearray):
            raise _Invalid(f"{name}: not UTF-8 text")
        if isinstance(v, str) and "\x00" in v:
            raise _Invalid(f"{name}: has a NUL")
    return values


def _first(pkt: Any, name: str) -> Any:
    values = _values(pkt, name)
    return values[0] if values else None


def _request(pkt: Any) -> DaeRequest:
    disconnect = pkt.code == packet.DisconnectRequest
    names = set()
    for key in pkt.keys():
        names.add(key if isinstance(key, str) else f"attribute {key}")
    allowed = set(IDENTIFIERS) | INFORMATIONAL | (set() if disconnect else COA_CHANGES)
    unsupported = tuple(sorted(n for n in names if n not in allowed))
    try:
        return _decoded(pkt, disconnect, unsupported)
    except _Invalid as e:  # signed by a client we know, but not well formed: NAK 407
        return DaeRequest(disconnect=disconnect, ids={}, unsupported=unsupported,
                          invalid=str(e))


def _decoded(pkt: Any, disconnect: bool, unsupported: tuple[str, ...]) -> DaeRequest:
    ids = {}
    for name in IDENTIFIERS:
        v = _first(pkt, name)
        if v is not None:
            ids[name] = str(v)
    nas = _first(pkt, "NAS-Identifier")
    nfs = None
    invalid = ""
    if not disconnect and pkt.get("Filter-Id"):
        try:
            nfs = parse_nfs(str(f) for f in _values(pkt, "Filter-Id"))
        except _Invalid:
            raise
        except ValueError as e:
            invalid = str(e)
    st, it = _first(pkt, "Session-Timeout"), _first(pkt, "Idle-Timeout")
    if it is not None and not 0 < int(it) <= 65535:
        invalid = invalid or f"Idle-Timeout {it}: give 1-65535 seconds"
    if st is not None and not 0 < int(st) <= MAX_SESSION_TIMEOUT:
        invalid = invalid or (f"Session-Timeout {st}: give 1-{MAX_SESSION_TIMEOUT} "
                              "seconds")
    return DaeRequest(disconnect=disconnect, ids=ids, nas_id=str(nas) if nas else None,
                      nfs=nfs, session_timeout=None if disconnect or st is None else int(st),
                      idle_timeout=None if disconnect or it is None else int(it),
                      unsupported=unsupported, invalid=invalid)


def check(req: DaeRequest) -> DaeResult | None:
    """The NAK a request earns before any session is looked at, or None."""
    if req.unsupported:
        return DaeResult(False, UNSUPPORTED_ATTRIBUTE,
                         f"unsupported attributes: {', '.join(req.unsupported)}")
    if req.invalid:
        return DaeResult(False, INVALID_ATTRIBUTE_VALUE, req.invalid)
    if not req.ids:
        return DaeResult(False, MISSING_ATTRIBUTE,
                         "no session identification (User-Name, Acct-Session-Id, "
                         "Calling-Station-Id or Framed-IP-Address)")
    if not req.disconnect and req.nfs is None and req.session_timeout is None \
            and req.idle_timeout is None:
        return DaeResult(False, MISSING_ATTRIBUTE, "a CoA-Request with nothing to change")
    return None


def encode_reply(pkt: Any, result: DaeResult) -> bytes:
    """The ACK or NAK of a request, with Error-Cause on a NAK, signed (Response
    Authenticator and Message-Authenticator)."""
    reply = pkt.CreateReply()
    if not result.ok:
        reply.code = (packet.DisconnectNAK if pkt.code == packet.DisconnectRequest
                      else packet.CoANAK)
        reply.AddAttribute("Error-Cause", result.error_cause or INVALID_REQUEST)
    reply.add_message_authenticator()
    return bytes(reply.ReplyPacket())


Handler = Callable[[DaeRequest], Awaitable[DaeResult]]


@dataclass
class DaeStats:
    acked: int = 0
    naked: int = 0
    dropped: dict[str, int] = field(default_factory=dict)


class DaeServer(asyncio.DatagramProtocol):
    """The UDP server. ``clients``: the networks allowed to send; ``secret`` the shared
    secret they sign with; ``handler`` decides each verified request."""

    def __init__(self, secret: str | bytes, clients: Iterable[str], handler: Handler) -> None:
        self.secret = secret.encode() if isinstance(secret, str) else secret
        self.clients = [ipaddress.ip_network(c, strict=False) for c in clients]
        self.handler = handler
        self.stats = DaeStats()
        self.transport: asyncio.DatagramTransport | None = None
        self._answers: OrderedDict[tuple[str, int, int, bytes], tuple[float, bytes | None]] = \
            OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def listen(cls, host: str, port: int, secret: str | bytes, clients: Iterable[str],
                     handler: Handler) -> DaeServer:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_datagram_endpoint(
            lambda: cls(secret, clients, handler), local_addr=(host, port))
        return proto

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        for t in self._tasks:
            t.cancel()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def _drop(self, addr: tuple[str, int], why: str) -> None:
        key = why.split(" (")[0]
        self.stats.dropped[key] = self.stats.dropped.get(key, 0) + 1
        log.warning("DAE request from %s:%d dropped: %s", addr[0], addr[1], why)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            source = ipaddress.ip_address(addr[0])
        except ValueError:
            return
        if not any(source in net for net in self.clients):
            self._drop(addr, "unknown client")
            return
        now = time.monotonic()
        while self._answers and next(iter(self._answers.values()))[0] < now - DUP_WINDOW:
            self._answers.popitem(last=False)
        key = (addr[0], addr[1], data[1] if len(data) > 1 else -1, bytes(data[4:20]))
        if key in self._answers:
            answer = self._answers[key][1]
            if answer is not None and self.transport is not None:
                self.transport.sendto(answer, addr)  # a retransmission: the same answer
            return
        try:
            pkt, req = decode(data, self.secret)
        except Refused as e:
            self._drop(addr, str(e))
            return
        if len(self._answers) >= 4096:
            self._answers.popitem(last=False)
        self._answers[key] = (now, None)  # being handled: retransmissions wait for it
        task = asyncio.get_running_loop().create_task(self._handle(pkt, req, addr, key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, pkt: Any, req: DaeRequest, addr: tuple[str, int],
                      key: tuple[str, int, int, bytes]) -> None:
        result = check(req)
        if result is None:
            try:
                result = await self.handler(req)
            except Exception as exc:  # never leave the client without an answer
                log.exception("DAE %s failed", req.kind)
                result = DaeResult(False, RESOURCES_UNAVAILABLE, f"{type(exc).__name__}")
        answer = encode_reply(pkt, result)
        if result.ok:
            self.stats.acked += 1
        else:
            self.stats.naked += 1
        log.info("DAE %s %s from %s: %s%s", req.kind, req.ids, addr[0],
                 "ACK" if result.ok else f"NAK {result.error_cause}",
                 f" ({result.message})" if result.message else "")
        self._answers[key] = (self._answers.get(key, (time.monotonic(), None))[0], answer)
        if self.transport is not None:
            self.transport.sendto(answer, addr)
