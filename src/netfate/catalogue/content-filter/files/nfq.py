"""A minimal nfnetlink_queue client (stdlib only): bind a queue, receive packets, send verdicts.

Message layouts from linux/netfilter/nfnetlink_queue.h and nfnetlink.h: every message is a
nlmsghdr, a nfgenmsg (family, version, queue number big-endian), then attributes. Packets come
as NFQNL_MSG_PACKET with NFQA_PACKET_HDR (id), NFQA_HWADDR (the sender's MAC) and
NFQA_PAYLOAD (from the network header); each gets one NFQNL_MSG_VERDICT.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

NETLINK_NETFILTER = 12
SOL_NETLINK, NETLINK_NO_ENOBUFS = 270, 5
NFNL_SUBSYS_QUEUE = 3
MSG_PACKET, MSG_VERDICT, MSG_CONFIG = 0, 1, 2
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
CFG_CMD, CFG_PARAMS, CFG_QUEUE_MAXLEN = 1, 2, 3
CMD_BIND, CMD_UNBIND = 1, 2
COPY_PACKET = 2
A_PACKET_HDR, A_VERDICT_HDR, A_HWADDR, A_PAYLOAD = 1, 2, 9, 10
NF_DROP, NF_ACCEPT = 0, 1


@dataclass(frozen=True)
class Packet:
    packet_id: int
    hw_protocol: int
    hwaddr: bytes | None
    payload: bytes


def attr(atype: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return struct.pack("=HH", n, atype) + payload + b"\0" * (-n % 4)


def attrs(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    off = 0
    while off + 4 <= len(data):
        n, t = struct.unpack_from("=HH", data, off)
        if n < 4:
            break
        out[t & 0x3FFF] = data[off + 4:off + n]
        off += (n + 3) & ~3
    return out


def parse(data: bytes) -> tuple[list[Packet], list[int]]:
    """(packets, netlink error codes) in one datagram from the queue socket."""
    packets: list[Packet] = []
    errors: list[int] = []
    off = 0
    while off + 16 <= len(data):
        n, mtype = struct.unpack_from("=IH", data, off)
        if n < 16:
            break
        body = data[off + 16:off + n]
        if mtype == NLMSG_ERROR and len(body) >= 4:
            errors.append(struct.unpack_from("=i", body, 0)[0])
        elif mtype == (NFNL_SUBSYS_QUEUE << 8) | MSG_PACKET:
            a = attrs(body[4:])
            hdr = a.get(A_PACKET_HDR)
            if hdr is not None and len(hdr) >= 7:
                pid, proto = struct.unpack_from("!IH", hdr, 0)
                hw = a.get(A_HWADDR)
                mac = None
                if hw is not None and len(hw) >= 4:
                    hlen = struct.unpack_from("!H", hw, 0)[0]
                    mac = hw[4:4 + hlen] if hlen == 6 else None
                packets.append(Packet(pid, proto, mac, a.get(A_PAYLOAD, b"")))
        off += (n + 3) & ~3
    return packets, errors


class Queue:
    """One bound queue. Raises OSError when the kernel refuses to bind it."""

    def __init__(self, num: int, maxlen: int = 1024) -> None:
        self.num = num
        self.seq = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.bind((0, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
        self._config(attr(CFG_CMD, struct.pack("!BxH", CMD_BIND, 0)))
        self._config(attr(CFG_PARAMS, struct.pack("!IB", 0xFFFF, COPY_PACKET))
                     + attr(CFG_QUEUE_MAXLEN, struct.pack("!I", maxlen)))

    def fileno(self) -> int:
        return self.sock.fileno()

    def _send(self, mtype: int, flags: int, payload: bytes) -> None:
        self.seq += 1
        body = struct.pack("=BB", socket.AF_UNSPEC, 0) + struct.pack("!H", self.num) + payload
        hdr = struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | mtype, flags,
                          self.seq, 0)
        self.sock.send(hdr + body)

    def _config(self, payload: bytes) -> None:
        self._send(MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, payload)
        _, errors = parse(self.sock.recv(65536))
        for e in errors:
            if e != 0:
                raise OSError(-e, f"nfqueue {self.num}: configuration refused")

    def receive(self) -> list[Packet]:
        packets, _ = parse(self.sock.recv(1 << 17))
        return packets

    def verdict(self, packet_id: int, accept: bool) -> None:
        self._send(MSG_VERDICT, NLM_F_REQUEST,
                   attr(A_VERDICT_HDR, struct.pack("!II", NF_ACCEPT if accept else NF_DROP,
                                                   packet_id)))

    def close(self) -> None:
        try:
            self._config(attr(CFG_CMD, struct.pack("!BxH", CMD_UNBIND, 0)))
        except OSError:
            pass
        self.sock.close()
