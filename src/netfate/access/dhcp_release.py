"""End a lease in the CPE's dnsmasq on a client's behalf: a DHCPRELEASE (RFC 2131 section
4.4.6) sent to dnsmasq from inside its own namespace, as dnsmasq's `dhcp_release` tool does.

Used when a device's old MAC must leave nothing behind (a randomised MAC that logged in
again): its leases go at once instead of when they expire, and the stable address its
lease held can be handed to the device's new MAC. dnsmasq ends the lease whose address,
MAC and client-id (if the lease has one) all match, and answers nothing.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import struct

from netfate.drivers import netns as netns_driver
from netfate.errors import DriverError

DHCPRELEASE = 7
_COOKIE = b"\x63\x82\x53\x63"


def packet(mac: str, ip: str, server: str, client_id: bytes | None = None) -> bytes:
    """The DHCPRELEASE bytes for the lease of (mac, ip, client_id) held from ``server``."""
    hw = bytes.fromhex(mac.replace(":", ""))
    if len(hw) != 6:
        raise ValueError(f"{mac!r} is not a MAC address")
    ciaddr = ipaddress.IPv4Address(ip).packed
    head = struct.pack("!BBBBIHH", 1, 1, 6, 0, secrets.randbits(32), 0, 0)
    body = ciaddr + b"\0" * 12 + hw + b"\0" * 10 + b"\0" * 192  # yiaddr..giaddr, chaddr, sname+file
    opts = bytes([53, 1, DHCPRELEASE, 54, 4]) + ipaddress.IPv4Address(server).packed
    if client_id:
        opts += bytes([61, len(client_id)]) + client_id
    return head + body + _COOKIE + opts + b"\xff"


def lease_entries(text: str) -> list[tuple[str, str, bytes | None]]:
    """(mac, ip, client-id) of each lease in dnsmasq's lease file text
    (`expiry mac ip hostname client-id`; client-id `*` or hex bytes with colons)."""
    out: list[tuple[str, str, bytes | None]] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3 or parts[1].count(":") != 5:
            continue
        clid = None
        if len(parts) >= 5 and parts[4] != "*":
            try:
                clid = bytes.fromhex(parts[4].replace(":", ""))
            except ValueError:
                clid = None
        out.append((parts[1].lower(), parts[2], clid))
    return out


def release(netns: str | None, interface: str, server: str, mac: str, ip: str,
            client_id: bytes | None = None) -> None:
    """Send it from inside ``netns``, bound to ``interface`` (dnsmasq takes a DHCP packet by
    the interface it came in on). DriverError if it cannot be sent."""
    data = packet(mac, ip, server, client_id)
    try:
        with netns_driver.socket_in(netns, socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
            s.sendto(data, (server, 67))
    except OSError as exc:
        raise DriverError(f"DHCPRELEASE of {ip} ({mac}) in {netns}: {exc}") from exc
