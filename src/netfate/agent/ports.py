"""What each port of a node's switch is for, from its external_ids. Pure but for the file read.

Whoever attaches a port says what it is (`netfate-kind`, and `attached-mac` for what is behind
it): the testbed for client links and infrastructure, the access services for their own
port. The uplink is known by name; NF ports (named by naming.nf_port) are the agent's own
and are left out. On a CPE any other port is a LAN (access) port, on a PE or DC an
infrastructure port.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from netfate import naming, paths
from netfate.bus.messages import ServicesPort, SwitchPorts

PORT_POLL_S = 0.05  # how often the agent looks at its switch (an in-memory OVSDB read)
_MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
_NAME = re.compile(r"^[a-z][a-z0-9]{0,31}$")  # a node name (the topology's alphabet)
_NF_PORT = re.compile("^" + re.escape(naming.PREFIX) + "p[0-9a-f]{9}$")  # naming.nf_port


def leases_file(node: str) -> Path:
    """dnsmasq's lease file of the node's access services (see netfate.access)."""
    return paths.run_dir() / "access" / node / "leases"


def read_leases(path: Path) -> dict[str, str]:
    """dnsmasq's lease file: `expiry mac ip hostname client-id` per line."""
    out: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and _MAC.fullmatch(parts[1].lower()) and _ipv4(parts[2]):
            out[parts[1].lower()] = parts[2]
    return out


def _ipv4(text: str) -> bool:
    """A dotted-quad IPv4 address in ASCII digits (what the controller's model takes)."""
    try:
        return str(ipaddress.IPv4Address(text)) == text
    except ValueError:
        return False


def switch_ports(role: str, uplink: str, ports: dict[str, dict[str, str]],
                 leases: dict[str, str]) -> SwitchPorts:
    access: list[str] = []
    infra: list[str] = []
    links: dict[str, str] = {}
    stations: dict[str, str] = {}
    services: ServicesPort | None = None
    up: str | None = None
    tunnels: dict[str, str] = {}
    endpoint: str | None = None
    for name in sorted(ports):
        ids = ports[name]
        kind = ids.get("netfate-kind")
        if kind == "tunnel":  # the overlay: never NORMAL-switched, never a link of the tree
            if (peer := ids.get("netfate-peer-node")) and _NAME.fullmatch(peer):
                tunnels[peer] = name
                endpoint = endpoint or ids.get("netfate-endpoint")
            continue
        if peer := ids.get("netfate-peer-node"):
            links[name] = peer
        if name == uplink:
            up = name
        elif _NF_PORT.match(name) and kind is None:
            continue
        elif kind == "services":
            mac, ip = ids.get("attached-mac", "").lower(), ids.get("netfate-ip", "")
            if _MAC.fullmatch(mac) and ip:
                services = ServicesPort(port=name, mac=mac, ip=ip)
        elif role == "cpe" and kind in (None, "access"):
            access.append(name)
            mac = ids.get("attached-mac", "").lower()
            if _MAC.fullmatch(mac) and not int(mac[:2], 16) & 1:  # a station's: unicast
                stations[mac] = name
        else:
            infra.append(name)
    return SwitchPorts(uplink=up, access=access, infra=infra, links=links, services=services,
                       stations=stations, leases=leases if role == "cpe" else {},
                       endpoint=endpoint, tunnels=tunnels)
