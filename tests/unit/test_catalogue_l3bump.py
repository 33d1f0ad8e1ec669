"""The pure parts of the address-rewriting NFs' helpers: l3bump (values, marks, conntrack
entries) and the NAT's arpd (ARP frames, rtnetlink neighbour requests, lan MACs)."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest

from tests.unit.catalogue_nf import load

arpd = load("nat", "arpd")


L3 = load("nat", "nat").l3  # l3bump, as the NAT imports it
ST = load("nat", "nat").st  # ctstate, shared with the firewall and the load balancer


def test_values_and_their_errors(capsys: pytest.CaptureFixture[str]) -> None:
    iface = L3.interface("10.90.254.1/16", "address")
    assert iface == ipaddress.IPv4Interface("10.90.254.1/16")
    assert L3.cidr("10.1.2.3/24", "x") == "10.1.2.0/24"
    assert L3.gateway_in("10.90.0.1", iface, "gateway") == "10.90.0.1"
    for call, msg in ((lambda: L3.interface("10.0.0.1", "address"),
                       "address: must be an IPv4 address with a prefix length"),
                      (lambda: L3.ipv4("::1", "vip"), "vip:"),
                      (lambda: L3.gateway_in("10.91.0.1", iface, "gateway"),
                       "gateway: 10.91.0.1 is not inside 10.90.0.0/16")):
        with pytest.raises(SystemExit):
            call()
        assert msg in capsys.readouterr().err


def test_marks_and_conntrack_entries(capsys: pytest.CaptureFixture[str]) -> None:
    marks = "\n".join(L3.bridge_marks("t", "l0", "w0"))
    assert 'iifname "l0" meta mark set 0x1' in marks and "delete table bridge t" in marks
    listing = "-A -s 1.1.1.1 -d 2.2.2.2\nconntrack v1.4.7: 1 flow entries\n"
    assert ST.saved_entries(listing) == ["-A -s 1.1.1.1 -d 2.2.2.2"]
    with pytest.raises(SystemExit):
        ST.check_entries(["-A x\n-A y"])
    assert "malformed conntrack entry" in capsys.readouterr().err


def test_arp_request_is_rfc826() -> None:
    src, dst = bytes.fromhex("020000000001"), b"\xff" * 6
    f = arpd.arp_request(src, "10.90.254.1", dst, "10.90.0.1")
    assert f[:6] == dst and f[6:12] == src and f[12:14] == b"\x08\x06"
    htype, ptype, hlen, plen, op, sha, spa, _, tpa = struct.unpack("!HHBBH6s4s6s4s", f[14:])
    assert (htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, 1)
    assert (sha, socket.inet_ntoa(spa), socket.inet_ntoa(tpa)) == (src, "10.90.254.1",
                                                                    "10.90.0.1")


def neigh_msg(mtype: int, ifindex: int, state: int, ip: str) -> bytes:
    attr = struct.pack("=HH", 8, 1) + socket.inet_aton(ip)
    body = struct.pack("=B3xiHBB", socket.AF_INET, ifindex, state, 0, 0) + attr
    return struct.pack("=IHHII", 16 + len(body), mtype, 0, 0, 0) + body


def test_neighbour_requests_on_br0_only() -> None:
    data = (neigh_msg(arpd.RTM_GETNEIGH, 5, 0, "10.90.1.1")
            + neigh_msg(arpd.RTM_NEWNEIGH, 5, arpd.NUD_INCOMPLETE, "10.90.1.2")
            + neigh_msg(arpd.RTM_NEWNEIGH, 5, 0x02, "10.90.1.3")  # REACHABLE: nothing to do
            + neigh_msg(arpd.RTM_GETNEIGH, 7, 0, "10.90.1.4"))  # another interface
    assert arpd.neigh_requests(data, 5) == ["10.90.1.1", "10.90.1.2"]


def test_lan_macs_are_learned_ones_on_lan() -> None:
    fdb = [{"mac": "02:00:00:00:00:01", "ifname": "lan", "state": ""},
           {"mac": "02:00:00:00:00:02", "ifname": "lan", "state": "permanent"},
           {"mac": "02:00:00:00:00:03", "ifname": "lan", "flags": ["self"]},
           {"mac": "02:00:00:00:00:04", "ifname": "wan"}]
    assert arpd.lan_macs(fdb, "lan") == ["02:00:00:00:00:01"]
