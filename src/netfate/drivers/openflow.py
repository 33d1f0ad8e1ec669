"""A persistent OpenFlow 1.3 session with one OVS bridge, over its management socket.

Flows are encoded and decoded by controller/ofmsg.py (os-ken's OpenFlow 1.3 parser), the same
encoder the SDN controller uses. A batch of flow-mods is
followed by a barrier, and any error the switch returns for the batch is raised. One session
per bridge replaces an ovs-ofctl process per change (~30 ms each on this machine).
"""

from __future__ import annotations

import socket
import struct
import threading
import types
from typing import Any

from os_ken.ofproto import ofproto_parser
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from netfate.controller import ofmsg
from netfate.controller.flowmod import FlowMod
from netfate.errors import DriverError

_DP = types.SimpleNamespace(ofproto=ofp, ofproto_parser=parser, id=0)


class OpenFlowChannel:
    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._xid = 0
        self._lock = threading.Lock()
        # Sessions opened so far: a new one means the switch may have restarted (and lost
        # its flows), so what a caller remembers of its flows is to be asked again.
        self.sessions = 0

    # -- connection -----------------------------------------------------------------------
    def _connect(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.path)
            hello = parser.OFPHello(_DP)
            hello.xid = self._next_xid()
            hello.serialize()
            s.sendall(hello.buf)
            msg = self._read(s)
            if not isinstance(msg, parser.OFPHello):
                raise DriverError(f"{self.path}: expected HELLO, got {type(msg).__name__}")
            self.sessions += 1
        except OSError as exc:
            s.close()
            raise DriverError(f"cannot open OpenFlow session on {self.path}: {exc}") from exc
        return s

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def _next_xid(self) -> int:
        self._xid = (self._xid + 1) & 0xFFFFFFFF
        return self._xid

    @staticmethod
    def _recv_exact(s: socket.socket, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise DriverError("the switch closed the OpenFlow session")
            buf += chunk
        return bytes(buf)

    def _read(self, s: socket.socket) -> Any:
        head = self._recv_exact(s, 8)
        version, msg_type, length, xid = struct.unpack("!BBHI", head)
        body = self._recv_exact(s, length - 8)
        if version != ofp.OFP_VERSION:
            raise DriverError(f"switch speaks OpenFlow version {version}, not 1.3")
        return ofproto_parser.msg(_DP, version, msg_type, length, xid, head + body)

    # -- requests -------------------------------------------------------------------------
    def _transact(self, msgs: list[Any], want_replies: bool = False) -> list[Any]:
        """Send msgs and a barrier; return replies to msgs; raise on any error for them."""
        with self._lock:
            for attempt in (0, 1):
                if self._sock is None:
                    self._sock = self._connect()
                try:
                    return self._transact_once(self._sock, msgs, want_replies)
                except (OSError, DriverError) as exc:
                    self._sock.close()
                    self._sock = None
                    if attempt or isinstance(exc, _SwitchError):
                        raise DriverError(f"OpenFlow on {self.path}: {exc}") from exc
        raise AssertionError("unreachable")

    def _transact_once(self, s: socket.socket, msgs: list[Any], want: bool) -> list[Any]:
        xids = set()
        data = bytearray()
        for m in msgs:
            m.xid = self._next_xid()
            m.serialize()
            xids.add(m.xid)
            data += m.buf
        barrier = parser.OFPBarrierRequest(_DP)
        barrier.xid = self._next_xid()
        barrier.serialize()
        data += barrier.buf
        s.sendall(data)
        replies: list[Any] = []
        while True:
            msg = self._read(s)
            if isinstance(msg, parser.OFPEchoRequest):
                echo = parser.OFPEchoReply(_DP, data=msg.data)
                echo.xid = msg.xid
                echo.serialize()
                s.sendall(echo.buf)
            elif isinstance(msg, parser.OFPErrorMsg) and msg.xid in xids:
                raise _SwitchError(f"switch refused a request: type {msg.type} code {msg.code}")
            elif isinstance(msg, parser.OFPBarrierReply) and msg.xid == barrier.xid:
                return replies
            elif want and msg.xid in xids:
                replies.append(msg)

    # -- flows (encoded and decoded by controller/ofmsg.py, the one encoder) ---------------
    def add_flows(self, flows: list[FlowMod]) -> None:
        """OFPFC_ADD each flow (one with the same table, priority and match is replaced)."""
        if flows:
            self._transact([ofmsg.flow_mod(_DP, f) for f in flows])

    def delete_strict(self, flows: list[FlowMod]) -> None:
        """Remove exactly these flows (table, priority, match and cookie)."""
        if flows:
            self._transact([ofmsg.flow_mod(_DP, f, ofp.OFPFC_DELETE_STRICT) for f in flows])

    def flow_stats(self) -> list[Any]:
        """Every flow of every table, as os-ken OFPFlowStats."""
        req = parser.OFPFlowStatsRequest(_DP, table_id=ofp.OFPTT_ALL)
        return [st for reply in self._transact([req], want_replies=True) for st in reply.body]

    def flows(self) -> list[FlowMod]:
        """The switch's flows as FlowMods, to diff against the desired ones (sync.diff)."""
        return [ofmsg.from_stats(st) for st in self.flow_stats()]

    def dump_flows(self) -> list[dict[str, Any]]:
        """The switch's flows with their counters, for people and tests."""
        return [
            {
                "cookie": st.cookie,
                "priority": st.priority,
                "table_id": st.table_id,
                "match": dict(st.match.items()),
                "packets": st.packet_count,
                "bytes": st.byte_count,
                "duration_s": st.duration_sec + st.duration_nsec / 1e9,
                "idle_timeout": st.idle_timeout,
            }
            for st in self.flow_stats()
        ]


class _SwitchError(DriverError):
    pass
