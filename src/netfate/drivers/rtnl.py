"""The few rtnetlink link requests on an NF's start path, over a plain netlink socket.

pyroute2 (netfate.drivers.netns) stays the general tool; these requests are the ones an NF's
create and start repeat: find an interface by name, rename it, set it up or down, enslave it
to a bridge, make a bridge, list the namespace's interfaces. Through pyroute2 0.9 each costs
0.15-0.9 ms of Python around a kernel call of ~0.01 ms (its sync API drives an asyncio loop
per request), plus ~0.4-1 ms to open an IPRoute, measured here on 2026-12-02; a start from a
pool makes about a dozen of them. Requests are synchronous, one at a time, each acknowledged
(NLM_F_ACK), with the kernel's errno raised as RtnlError (a DriverError). Messages follow
linux/netlink.h, linux/rtnetlink.h and linux/if_link.h.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from dataclasses import dataclass
from types import TracebackType

from netfate.drivers import netns
from netfate.errors import DriverError

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_GETLINK = 16, 18
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP, NLM_F_EXCL, NLM_F_CREATE = 0x300, 0x200, 0x400
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO = 1, 3, 10, 18
IFLA_GROUP, IFLA_EXT_MASK = 27, 29
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_BR_FORWARD_DELAY, IFLA_BR_STP_STATE = 1, 5
RTEXT_FILTER_SKIP_STATS = 1 << 3  # a dump without the counters: smaller, faster
IFF_UP = 0x1
NLA_F_NESTED = 1 << 15

_HDR = struct.Struct("=IHHII")   # nlmsghdr: len, type, flags, seq, pid
_IFI = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_NLA = struct.Struct("=HH")      # nlattr: len, type
_RECV = 65536


class RtnlError(DriverError):
    """The kernel refused a request; `errno` says why."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.errno = code


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    mac: str  # "" when it has none


def _attr(kind: int, data: bytes) -> bytes:
    size = _NLA.size + len(data)
    return _NLA.pack(size, kind) + data + b"\0" * (-size % 4)


def _name(value: str) -> bytes:
    raw = value.encode()
    if not raw or len(raw) > 15 or b"\0" in raw or b"/" in raw:
        raise DriverError(f"{value[:40]!r} is not an interface name")
    return _attr(IFLA_IFNAME, raw + b"\0")


def _attrs(data: bytes) -> dict[int, bytes]:
    """The attributes of a message body, by type (nested ones left packed)."""
    out: dict[int, bytes] = {}
    pos = 0
    while pos + _NLA.size <= len(data):
        size, kind = _NLA.unpack_from(data, pos)
        if size < _NLA.size:
            break
        out[kind & ~NLA_F_NESTED] = data[pos + _NLA.size:pos + size]
        pos += (size + 3) & ~3
    return out


class Rtnl:
    """One rtnetlink socket, bound in namespace `ns` (None: this thread's own); a context
    manager. Not thread-safe: one request at a time."""

    def __init__(self, ns: str | None = None) -> None:
        if ns is None:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        else:
            self._sock = netns.socket_in(ns, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.ns = ns or "(own)"
        self._sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- requests -------------------------------------------------------------------------
    def _ask(self, kind: int, flags: int, index: int = 0, iflags: int = 0, change: int = 0,
             attrs: bytes = b"", what: str = "") -> list[bytes]:
        """Send one ifinfomsg request; the bodies of the kernel's answers (a dump's links,
        or none for an acknowledged change). DriverError with the errno otherwise."""
        self._seq += 1
        body = _IFI.pack(socket.AF_UNSPEC, 0, index, iflags, change) + attrs
        self._sock.send(_HDR.pack(_HDR.size + len(body), kind, flags | NLM_F_REQUEST,
                                  self._seq, 0) + body)
        out: list[bytes] = []
        while True:
            data = self._sock.recv(_RECV)
            pos = 0
            while pos + _HDR.size <= len(data):
                size, mtype, mflags, seq, _pid = _HDR.unpack_from(data, pos)
                if size < _HDR.size:
                    raise DriverError(f"rtnetlink in {self.ns}: a malformed answer")
                msg = data[pos + _HDR.size:pos + size]
                pos += (size + 3) & ~3
                if seq != self._seq:
                    continue  # not ours (a late answer to an earlier request)
                if mtype == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", msg)[0]
                    if code:
                        raise RtnlError(f"{what or 'rtnetlink'} in {self.ns}: "
                                        f"{os.strerror(code)}", code)
                    return out  # the acknowledgement
                if mtype == NLMSG_DONE:
                    return out
                out.append(msg)
                if not mflags & NLM_F_MULTI:
                    return out

    def links(self) -> list[Link]:
        """Every interface of the namespace."""
        out = []
        for msg in self._ask(RTM_GETLINK, NLM_F_DUMP,
                             attrs=_attr(IFLA_EXT_MASK, struct.pack("=I",
                                                                    RTEXT_FILTER_SKIP_STATS)),
                             what="listing links"):
            out.append(_link(msg))
        return out

    def index(self, name: str) -> int | None:
        """The interface's index, None if there is none of that name."""
        try:
            msgs = self._ask(RTM_GETLINK, 0, attrs=_name(name), what=f"looking up {name}")
        except RtnlError as exc:
            if exc.errno == errno.ENODEV:
                return None
            raise
        return _link(msgs[0]).index if msgs else None

    def set(self, index: int, *, name: str | None = None, up: bool | None = None,
            master: int | None = None, group: int | None = None) -> None:
        """Change interface `index`: its name, state, bridge (master) and group."""
        attrs = (_name(name) if name else b"") + (
            _attr(IFLA_MASTER, struct.pack("=I", master)) if master is not None else b"") + (
            _attr(IFLA_GROUP, struct.pack("=I", group)) if group is not None else b"")
        self._ask(RTM_NEWLINK, NLM_F_ACK, index=index, iflags=IFF_UP if up else 0,
                  change=IFF_UP if up is not None else 0, attrs=attrs,
                  what=f"setting link {index}")

    def add_bridge(self, name: str) -> None:
        """A bridge `name` (down), STP off and no forward delay, as `ip link add NAME type
        bridge stp_state 0 forward_delay 0`. DriverError (File exists) if it exists."""
        data = (_attr(IFLA_BR_FORWARD_DELAY, struct.pack("=I", 0))
                + _attr(IFLA_BR_STP_STATE, struct.pack("=I", 0)))
        info = _attr(IFLA_INFO_KIND, b"bridge") + _attr(IFLA_INFO_DATA | NLA_F_NESTED, data)
        self._ask(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                  attrs=_name(name) + _attr(IFLA_LINKINFO | NLA_F_NESTED, info),
                  what=f"adding bridge {name}")


def _link(msg: bytes) -> Link:
    _family, _type, index, _flags, _change = _IFI.unpack_from(msg)
    a = _attrs(msg[_IFI.size:])
    name = a.get(IFLA_IFNAME, b"").split(b"\0", 1)[0].decode(errors="replace")
    mac = ":".join(f"{b:02x}" for b in a.get(IFLA_ADDRESS, b""))
    return Link(index, name, mac)


# -- what the drivers ask, each with one socket -------------------------------------------
def set_up(ns: str, ifnames: list[str], group: int | None = None) -> None:
    """Bring lo and the named interfaces up inside ns; with `group`, the named interfaces
    join that interface group (netns.delete_group). DriverError if one is missing."""
    with Rtnl(ns) as r:
        index = {link.name: link.index for link in r.links()}
        for name in ["lo", *ifnames]:
            if name not in index:
                raise DriverError(f"{name} is missing in namespace {ns}")
            r.set(index[name], up=True, group=group if name != "lo" else None)


def own_macs(ns: str, skip: set[str]) -> list[str]:
    """MACs of the interfaces in ns other than lo and `skip` (an NF's own bridge, say)."""
    with Rtnl(ns) as r:
        links = r.links()
    return sorted(link.mac for link in links if link.name != "lo" and link.name not in skip
                  and link.mac and link.mac != "00:00:00:00:00:00")


def rename_up(pairs: list[tuple[str, str]]) -> None:
    """In this thread's namespace, each interface `old` renamed `new` and set up (one
    request each). DriverError if one is missing or a name is taken."""
    with Rtnl() as r:
        for old, new in pairs:
            idx = r.index(old)
            if idx is None:
                raise DriverError(f"interface {old} is gone")
            r.set(idx, name=new, up=True)
