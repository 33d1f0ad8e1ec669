"""Hostile frames at a CPE's access port, on the real data plane (issue #16, inputs 5 and 6
and the IPv6 rule): OVS, os-ken, the orchestrator, dnsmasq and the portal of a full testbed,
with raw frames written into the client's namespace (AF_PACKET) and read at the other end.

- a frame from a group source MAC (03:00:00:00:00:01) dies at the LSI: it never becomes a
  client, and the CPE's switch keeps taking new state;
- DHCP from a flood of made-up MACs is metered per access port (an OpenFlow meter) and the
  unauthenticated stations the orchestrator keeps are capped (max_hosts_per_port);
- no IPv6 (an RS, an NS, a unicast packet) nor any EtherType but ARP and IPv4 crosses a CPE,
  before or after login, in either direction: client <-> internet, client <-> client (through
  the core), client <-> the CPE's access services.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from netfate import naming, paths
from netfate.access import dhcp_client
from netfate.access.addressing import services_netns
from netfate.api_auth import BearerAuth
from netfate.drivers import netns
from netfate.testbed import lifecycle
from netfate.testbed.context import Testbed
from netfate.testbed.settings import TestbedSettings
from netfate.testbed.topology import load_topology

from .conftest import Server
from .test_access_e2e import add_user, connects, login_and_renew, wait_for

API = lifecycle.api_url() + "/api/v1"
C1, C2, INET_NS = "fate-h-client1", "fate-h-client2", "fate-h-inet"
SVC1 = services_netns("cpe1")  # cpe1's DHCP/DNS/portal namespace
MAX_HOSTS, DHCP_PPS = 6, 10
ETH_P_ALL, ETH_IPV6, ETH_IPV4 = 0x0003, 0x86DD, 0x0800
PACKET_OUTGOING = 4
GROUP_SRC = "03:00:00:00:00:01"


@pytest.fixture(scope="module")
def stack() -> Iterator[Testbed]:
    """A full testbed whose orchestrator caps unauthenticated stations at MAX_HOSTS per port
    and meters unknown DHCP at DHCP_PPS (through its NETFATE_* environment)."""
    topo = load_topology()
    was_up = lifecycle.status()["up"]
    mp = pytest.MonkeyPatch()
    mp.setenv("NETFATE_MAX_HOSTS_PER_PORT", str(MAX_HOSTS))
    mp.setenv("NETFATE_DHCP_PPS", str(DHCP_PPS))
    try:
        lifecycle.down()
        lifecycle.up(topo, settings=TestbedSettings(idle_timeout=30))
        with Testbed.attach() as tb:
            yield tb
    finally:
        mp.undo()
        lifecycle.down()
        if was_up:
            lifecycle.up(topo, services=False)


# -- frames ----------------------------------------------------------------------------------
def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def link_mac(ns: str, ifname: str = "eth0") -> str:
    out = subprocess.run(["ip", "-n", ns, "-br", "link", "show", ifname], check=True,
                         capture_output=True, text=True).stdout.split()
    return out[2]


def dhcp_discover(src: str, xid: int) -> bytes:
    """A broadcast DHCPDISCOVER from `src` (RFC 2131), IPv4/UDP checksums as a client sends."""
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000,
                        bytes(4), bytes(4), bytes(4), bytes(4), mac_bytes(src), b"", b"")
    bootp += b"\x63\x82\x53\x63" + b"\x35\x01\x01" + b"\xff"
    udp = struct.pack("!HHHH", 68, 67, 8 + len(bootp), 0) + bootp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     bytes(4), b"\xff" * 4)
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    return mac_bytes("ff:ff:ff:ff:ff:ff") + mac_bytes(src) + struct.pack("!H", ETH_IPV4) + \
        ip + udp


def _csum(b: bytes) -> int:
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv6_frames(src: str, dst_mac: str, marker: bytes) -> list[bytes]:
    """An ICMPv6 Router Solicitation (RFC 4861 4.1) to all routers, a Neighbor Solicitation
    to a solicited-node group, a unicast IPv6 packet to `dst_mac`, and a frame of another
    EtherType (0x88b5, local experimental): each carries `marker`."""
    src_ll = b"\xfe\x80" + bytes(6) + mac_bytes(src)[:3] + b"\xff\xfe" + mac_bytes(src)[3:]

    def v6(dst_mac_: str, dst_ip: bytes, icmp: bytes) -> bytes:
        payload = icmp + marker
        hdr = struct.pack("!IHBB", 0x60000000, len(payload), 58, 255) + src_ll + dst_ip
        return mac_bytes(dst_mac_) + mac_bytes(src) + struct.pack("!H", ETH_IPV6) + hdr + \
            payload

    all_routers = b"\xff\x02" + bytes(13) + b"\x02"
    solicited = b"\xff\x02" + bytes(9) + b"\x01\xff" + b"\x00\x00\x01"
    rs = struct.pack("!BBHI", 133, 0, 0, 0)
    ns = struct.pack("!BBHI", 135, 0, 0, 0) + b"\xfe\x80" + bytes(13) + b"\x01"
    echo = struct.pack("!BBHHH", 128, 0, 0, 1, 1)
    return [
        v6("33:33:00:00:00:02", all_routers, rs),
        v6("33:33:ff:00:00:01", solicited, ns),
        v6(dst_mac, b"\xfe\x80" + bytes(14), echo),
        v6("ff:ff:ff:ff:ff:ff", all_routers, rs),
        mac_bytes(dst_mac) + mac_bytes(src) + b"\x88\xb5" + marker + bytes(40),
    ]


def arp_request(src: str, spa: str, marker: bytes, tpa: str = "10.90.0.1") -> bytes:
    """A broadcast ARP request from `src` (RFC 826), `marker` in the Ethernet padding."""
    arp = struct.pack("!HHBBH6s4s6s4s", 1, ETH_IPV4, 6, 4, 1, mac_bytes(src),
                      socket.inet_aton(spa), bytes(6), socket.inet_aton(tpa))
    return mac_bytes("ff:ff:ff:ff:ff:ff") + mac_bytes(src) + b"\x08\x06" + arp + marker


@contextlib.contextmanager
def raw(ns: str, ifname: str = "eth0") -> Iterator[socket.socket]:
    s = netns.socket_in(ns, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        s.bind((ifname, 0))
        yield s
    finally:
        s.close()


def received(s: socket.socket, marker: bytes, seconds: float = 1.5) -> list[bytes]:
    """Frames that came in (not sent from here) carrying `marker`, within `seconds`."""
    out = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        r, _, _ = select.select([s], [], [], left)
        if not r:
            break
        data, addr = s.recvfrom(65535)
        if addr[2] != PACKET_OUTGOING and marker in data:
            out.append(data)
    return out


def crosses(src_ns: str, dst_ns: str, frames: list[bytes], marker: bytes) -> list[bytes]:
    """Send `frames` out of src_ns's eth0; what of them arrives at dst_ns's eth0."""
    with raw(dst_ns) as rx, raw(src_ns) as tx:
        for f in frames:
            tx.send(f)
        return received(rx, marker)


# -- the switch, as OVS and the orchestrator see it -----------------------------------------------
def ofctl(*args: str) -> str:
    return subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", *args], check=True,
                          capture_output=True, text=True,
                          env={**os.environ, "OVS_RUNDIR": str(paths.ovs_dir())}).stdout


def group_src_drops(bridge: str) -> int:
    for line in ofctl("dump-flows", bridge).splitlines():
        if "priority=999" in line and "dl_src=01:00:00:00:00:00/01:00:00:00:00:00" in line:
            return int(line.split("n_packets=")[1].split(",")[0])
    raise AssertionError(f"no group-source drop flow on {bridge}")


def meter_drops(bridge: str) -> int:
    """Packets the meters' drop bands dropped (ovs-ofctl meter-stats)."""
    out = ofctl("meter-stats", bridge)
    return sum(int(x.split("packet_count:")[1].split()[0])
               for x in out.split("band")[1:] if "packet_count:" in x)


def switch(node: str) -> dict[str, Any]:
    rows = httpx.get(f"{API}/switches", timeout=10, auth=BearerAuth()).json()
    return next(r for r in rows if r["node"] == node)


def guests(node: str) -> list[str]:
    return [u for u in switch(node)["users"] if u.startswith("~")]


def in_sync(node: str) -> bool:
    return bool(switch(node)["in_sync"])


# -- the tests --------------------------------------------------------------------------------
def test_a_group_source_mac_dies_at_the_edge_and_the_cpe_keeps_working(stack: Testbed
                                                                     ) -> None:
    lsi = naming.lsi("cpe1")
    wait_for(lambda: in_sync("cpe1"), 20, "cpe1 in sync")
    before = group_src_drops(lsi)
    with raw(C1) as tx:
        for i in range(20):
            tx.send(dhcp_discover(GROUP_SRC, 0x1600 + i))
            tx.send(dhcp_discover("ff:ff:ff:ff:ff:ff", 0x1700 + i))
    wait_for(lambda: group_src_drops(lsi) >= before + 40, 5, "the LSI to drop them")
    time.sleep(1)
    assert not any(GROUP_SRC in u or "ff:ff:ff:ff:ff:ff" in u for u in switch("cpe1")["users"])
    # The switch still takes new state: the client's own DHCP makes it a (new) station.
    dhcp_client.release(C1)
    assert dhcp_client.lease(C1).ip
    wait_for(lambda: in_sync("cpe1"), 10, "cpe1 in sync after the frames")
    assert switch("cpe1")["errors"] == []


def test_a_dhcp_flood_is_metered_and_its_stations_capped(stack: Testbed) -> None:
    lsi = naming.lsi("cpe1")
    rng = random.Random(16)
    macs = [f"02:{rng.randrange(1 << 40):010x}" for _ in range(300)]
    macs = [":".join([m[:2], *(m[3:][i:i + 2] for i in range(0, 10, 2))]) for m in macs]
    dropped = meter_drops(lsi)
    with raw(C1) as tx:
        for i, mac in enumerate(macs):  # as fast as the namespace sends: far above DHCP_PPS
            tx.send(dhcp_discover(mac, 0x2000 + i))
    wait_for(lambda: meter_drops(lsi) > dropped + 100, 5, "the DHCP meter to drop the flood")
    time.sleep(2)
    wait_for(lambda: in_sync("cpe1"), 10, "cpe1 in sync")
    assert 0 < len(guests("cpe1")) <= MAX_HOSTS, guests("cpe1")
    n_flows = len(ofctl("dump-flows", lsi).splitlines())
    # Slower than the meter: every discover is seen, and still at most MAX_HOSTS remain.
    with raw(C1) as tx:
        for i, mac in enumerate(macs[:3 * MAX_HOSTS]):
            tx.send(dhcp_discover(mac.replace("02:", "06:", 1), 0x3000 + i))
            time.sleep(1.5 / DHCP_PPS)
    time.sleep(2)
    wait_for(lambda: in_sync("cpe1"), 10, "cpe1 in sync")
    assert 0 < len(guests("cpe1")) <= MAX_HOSTS, guests("cpe1")
    assert len(ofctl("dump-flows", lsi).splitlines()) <= n_flows + 20
    # The real client is still served.
    dhcp_client.release(C1)
    assert dhcp_client.lease(C1).ip


def test_no_ipv6_crosses_a_cpe_before_or_after_login(stack: Testbed,
                                                      servers: list[Server]) -> None:
    inet_mac, c1_mac, c2_mac = link_mac(INET_NS), link_mac(C1), link_mac(C2)
    svc_mac = link_mac(SVC1)
    dhcp_client.release(C1)
    ip = dhcp_client.lease(C1).ip

    def check(when: str) -> None:
        # Positive control: the client's own ARP, with the marker in its padding, does
        # cross to the internet side (so the capture would see IPv6 if it crossed).
        marker = f"netfate-arp-{when}".encode()
        wait_for(lambda: crosses(C1, INET_NS, [arp_request(c1_mac, ip, marker)], marker) != [],
                 15, f"{when}: the client's ARP to reach the internet side")
        for src_ns, src_mac, dst_ns, dst_mac in (
                (C1, c1_mac, INET_NS, inet_mac), (INET_NS, inet_mac, C1, c1_mac),
                (C1, c1_mac, C2, c2_mac), (C2, c2_mac, C1, c1_mac),
                (SVC1, svc_mac, C1, c1_mac), (C1, c1_mac, SVC1, svc_mac)):
            marker = f"netfate-v6-{when}-{src_ns}".encode()
            got = crosses(src_ns, dst_ns, ipv6_frames(src_mac, dst_mac, marker), marker)
            assert got == [], f"{when}: {len(got)} non-IPv4 frames {src_ns} -> {dst_ns}"
        # The kernel's own IPv6 (ping to the all-nodes group, link-local) gets no answer
        # from the other side either.
        out = subprocess.run(["ip", "netns", "exec", C1, "ping", "-6", "-c", "2", "-W", "1",
                              "-i", "0.3", "ff02::1%eth0"], capture_output=True, text=True)
        own = own_v6(C1)
        others = [line for line in out.stdout.splitlines()
                  if "bytes from" in line and not any(a in line for a in own)]
        assert others == [], f"{when}: IPv6 answers from across the CPE: {others}"

    check("before-login")
    servers.append(Server(INET_NS, "10.255.0.1", 5301))
    add_user("v6user", "v6user-secret", [{"action": "allow", "proto": "tcp", "dport": 5301}])
    ip = login_and_renew(C1, "cpe1", "v6user", "v6user-secret")
    wait_for(lambda: connects(C1, 5301), 20, "v6user's IPv4 to pass (positive control)")
    check("after-login")


def own_v6(ns: str) -> list[str]:
    """The namespace's own IPv6 addresses on eth0 (its kernel answers its own ping)."""
    out = subprocess.run(["ip", "-n", ns, "-6", "-o", "addr", "show", "dev", "eth0"],
                         capture_output=True, text=True).stdout
    return [line.split()[3].split("/")[0] for line in out.splitlines()]
