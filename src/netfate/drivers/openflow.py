"""A persistent OpenFlow 1.3 session with one OVS bridge, over its management socket.

Messages are encoded and decoded with os-ken's OpenFlow 1.3 parser. A batch of flow-mods is
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

from netfate.errors import DriverError
from netfate.steering import FlowMod

_DP = types.SimpleNamespace(ofproto=ofp, ofproto_parser=parser, id=0)
_RESERVED = {
    "normal": ofp.OFPP_NORMAL,
    "flood": ofp.OFPP_FLOOD,
    "controller": ofp.OFPP_CONTROLLER,
    "in_port": ofp.OFPP_IN_PORT,
}
ALL_COOKIES = 0xFFFFFFFFFFFFFFFF


class OpenFlowChannel:
    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._xid = 0
        self._lock = threading.Lock()

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

    # -- flows ----------------------------------------------------------------------------
    def add_flows(self, flows: list[FlowMod]) -> None:
        self._transact([_flow_mod(f, ofp.OFPFC_ADD) for f in flows])

    def delete_strict(self, flows: list[FlowMod]) -> None:
        self._transact([_flow_mod(f, ofp.OFPFC_DELETE_STRICT) for f in flows])

    def delete_cookies(self, cookies: list[int]) -> None:
        msgs = [
            parser.OFPFlowMod(
                _DP, cookie=c, cookie_mask=ALL_COOKIES, table_id=ofp.OFPTT_ALL,
                command=ofp.OFPFC_DELETE, out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
                match=parser.OFPMatch(),
            )
            for c in cookies
        ]
        self._transact(msgs)

    def dump_flows(self) -> list[dict[str, Any]]:
        req = parser.OFPFlowStatsRequest(_DP, table_id=ofp.OFPTT_ALL)
        out = []
        for reply in self._transact([req], want_replies=True):
            for st in reply.body:
                out.append({
                    "cookie": st.cookie,
                    "priority": st.priority,
                    "table_id": st.table_id,
                    "match": dict(st.match.items()),
                    "packets": st.packet_count,
                    "bytes": st.byte_count,
                    "duration_s": st.duration_sec + st.duration_nsec / 1e9,
                    "idle_timeout": st.idle_timeout,
                })
        return out


class _SwitchError(DriverError):
    pass


def _flow_mod(f: FlowMod, command: int) -> Any:
    actions = [
        parser.OFPActionOutput(_RESERVED[o] if isinstance(o, str) else o, ofp.OFPCML_NO_BUFFER)
        for o in f.outputs
    ]
    inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)] if actions else []
    return parser.OFPFlowMod(
        _DP, cookie=f.cookie, table_id=f.table_id, command=command,
        idle_timeout=f.idle_timeout, priority=f.priority,
        flags=ofp.OFPFF_SEND_FLOW_REM if f.idle_timeout else 0,
        out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
        match=parser.OFPMatch(**f.match), instructions=inst,
    )
