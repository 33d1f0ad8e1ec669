"""The NAT's neighbour helper: makes the NAT's address known upstream and resolves lan hosts.

Usage: arpd.py daemon
Runs inside the NF's network namespace with "$NF_PYTHON" (stdlib only), started by
scripts/start, reloaded by SIGHUP.

Why: a reply to the NAT address is de-NATted, and br_netfilter then needs the lan host's MAC
from br0's neighbour table ("bridged DNAT"). br0 resolves it with a broadcast ARP, and a
NetFATE switch never floods into an NF's ports, nor lets an NF's broadcast out of its lan
side: only frames to or from the user's MAC are steered. So this daemon asks the lan hosts
the bridge has learned (its fdb on `lan`) by unicast ARP as soon as the kernel needs a
neighbour (app_solicit: the kernel tells user space, RFC 826 resolution done by hand).
Likewise, upstream broadcasts never reach the NF: the router replies come back through
(`gateway`) learns the NAT address from the ARP requests this daemon sends it: every
EARLY_REFRESH_S seconds for EARLY_FOR_S after a start or reload, then every REFRESH_S.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if TYPE_CHECKING:  # checked in the source tree; in the bundle it is packed next to this file
    from netfate.catalogue._shared import nfcommon as nf
else:
    import nfcommon as nf

ETH_P_ARP = 0x0806
RTMGRP_NEIGH = 0x4
RTM_NEWNEIGH, RTM_GETNEIGH = 28, 30
NUD_INCOMPLETE = 0x01
NDA_DST = 1
REFRESH_S = 20.0
# After a (re)start or reload, more often: the NF may not be steered yet (a move steers it
# after start and import), and until then what it sends upstream is dropped.
EARLY_REFRESH_S, EARLY_FOR_S = 1.0, 30.0
BRIDGE = "br0"


def mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def arp_request(src_mac: bytes, src_ip: str, dst_mac: bytes, target_ip: str) -> bytes:
    """An Ethernet frame carrying an ARP request (RFC 826) for target_ip, sent to dst_mac."""
    eth = dst_mac + src_mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, src_mac,
                      socket.inet_aton(src_ip), b"\0" * 6, socket.inet_aton(target_ip))
    return eth + arp


def neigh_requests(data: bytes, ifindex: int) -> list[str]:
    """IPv4 addresses the kernel is resolving on `ifindex`, from rtnetlink neighbour messages
    (RTM_GETNEIGH from app_solicit, or RTM_NEWNEIGH in state INCOMPLETE)."""
    out: list[str] = []
    off = 0
    while off + 16 <= len(data):
        length, mtype = struct.unpack_from("=IH", data, off)
        if length < 16:
            break
        body = data[off + 16:off + length]
        if mtype in (RTM_NEWNEIGH, RTM_GETNEIGH) and len(body) >= 12:
            family, idx, state = struct.unpack_from("=B3xiH", body, 0)
            if family == socket.AF_INET and idx == ifindex and (
                    mtype == RTM_GETNEIGH or state & NUD_INCOMPLETE):
                a = 12
                while a + 4 <= len(body):
                    alen, atype = struct.unpack_from("=HH", body, a)
                    if alen < 4:
                        break
                    if atype & 0x3FFF == NDA_DST and alen == 8:
                        out.append(socket.inet_ntoa(body[a + 4:a + 8]))
                    a += (alen + 3) & ~3
        off += (length + 3) & ~3
    return out


def lan_macs(fdb: list[dict[str, Any]], lan: str) -> list[str]:
    """MACs the bridge learned on its lan port (`bridge -j fdb show`), not its own."""
    return sorted({e["mac"] for e in fdb if e.get("ifname") == lan
                   and e.get("state") != "permanent" and "self" not in e.get("flags", [])})


def _fdb() -> list[dict[str, Any]]:
    p = subprocess.run(["bridge", "-j", "fdb", "show", "br", BRIDGE], capture_output=True,
                       text=True, check=False)
    try:
        doc: list[dict[str, Any]] = json.loads(p.stdout or "[]")
        return doc
    except ValueError:
        return []


def _link(name: str) -> tuple[int, bytes]:
    p = subprocess.run(["ip", "-j", "link", "show", "dev", name], capture_output=True,
                       text=True, check=False)
    try:
        ln = json.loads(p.stdout)[0]
        return int(ln["ifindex"]), mac_bytes(ln["address"])
    except (ValueError, IndexError, KeyError):
        nf.die(f"no interface {name}")


class Daemon:
    def __init__(self) -> None:
        self.lan, self.wan = nf.two_ports("nat")
        self.reload = True
        self.stop = False

    def config(self) -> None:
        cfg = nf.load_active_config()
        self.ip = str(cfg["address"]).split("/")[0]
        self.gateway: str | None = cfg.get("gateway")
        self.br_index, self.br_mac = _link(BRIDGE)
        self.reload = False

    def run(self) -> None:
        signal.signal(signal.SIGHUP, lambda *_: setattr(self, "reload", True))
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stop", True))
        # Unresolved neighbours are asked of us (rtnetlink), not only by ARP: app_solicit 1,
        # set through rtnetlink (RTM_SETNEIGHTBL) rather than /proc/sys, which a container
        # has read-only (and a namespace has no neigh/default to inherit it from).
        p = subprocess.run(["ip", "ntable", "change", "name", "arp_cache", "dev", BRIDGE,
                            "app_probes", "1"], capture_output=True, text=True, check=False)
        if p.returncode != 0:
            nf.die(f"cannot set app_probes on {BRIDGE}: {p.stderr.strip()}")
        rt = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        rt.bind((0, RTMGRP_NEIGH))
        lan = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        lan.bind((self.lan, ETH_P_ARP))
        wan = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        wan.bind((self.wan, ETH_P_ARP))
        next_refresh = early_until = 0.0
        while not self.stop:
            now = time.monotonic()
            if self.reload:
                self.config()
                next_refresh, early_until = 0.0, now + EARLY_FOR_S
            if now >= next_refresh:
                if self.gateway:
                    self._send(wan, b"\xff" * 6, self.gateway)
                next_refresh = now + (EARLY_REFRESH_S if now < early_until else REFRESH_S)
            try:
                ready, _, _ = select.select([rt], [], [], max(0.0, next_refresh - now))
            except InterruptedError:
                continue
            if not ready:
                continue
            data = rt.recv(65536)
            for ip in neigh_requests(data, self.br_index):
                for mac in lan_macs(_fdb(), self.lan):
                    self._send(lan, mac_bytes(mac), ip)

    def _send(self, sock: socket.socket, dst: bytes, target: str) -> None:
        try:
            sock.send(arp_request(self.br_mac, self.ip, dst, target))
        except OSError as e:  # a port down (stop/pause): the next request tries again
            print(f"arpd: cannot send ARP for {target}: {e}", file=sys.stderr)


def cmd_daemon() -> None:
    Daemon().run()


if __name__ == "__main__":
    nf.main(sys.argv[1:], globals(), __doc__)
