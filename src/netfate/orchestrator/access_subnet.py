"""Which addresses a user's device may have at a node: a host of the node's access subnet.

An association records the device's MAC and IPv4 at a node, and the node's switch steers
the user's traffic by them (controller/model.py Client). An address the node's access
subnet does not hold (where its DHCP server hands out addresses, and the RADIUS Framed-IPs
are reserved as static hosts: access/addressing.py) is never a source of the device's
traffic there: the session would steer nothing (a probe of `netfate users associate`).

What the orchestrator knows of a node's access subnet:

- the access subnet and its router: the settings' ``probe_subnet`` and ``probe_gateway``
  (NETFATE_PROBE_SUBNET, NETFATE_PROBE_GATEWAY), which the testbed sets to its topology's
  flat subnet and gateway (testbed/lifecycle.py);
- the node's access services address (DHCP, DNS, portal), from its agent's report of its
  switch (SwitchPorts.services, from the services port's ``netfate-ip``).

A node whose services address is a host of the access subnet serves that subnet. Any other
node (a PE, a CPE without access services, or whose services lie outside the subnet, or an
orchestrator with no subnet) has no known access subnet: its associations are checked as
before, but for its own services address, which is never a station's.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from netfate.errors import InvalidInput
from netfate.validators import station_ipv4, unicast_mac


@dataclass(frozen=True)
class AccessSubnet:
    """The access subnet, and its router (None: not known)."""

    network: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address | None = None

    @classmethod
    def of(cls, subnet: str, gateway: str = "") -> AccessSubnet | None:
        """From the settings' strings (checked there); None for no subnet (empty)."""
        if not subnet:
            return None
        net = ipaddress.IPv4Network(subnet)
        gw = ipaddress.IPv4Address(gateway) if gateway else None
        return cls(net, gw if gw is not None and gw in net else None)

    def serves(self, services_ip: str | None) -> bool:
        """Whether a node with this access services address serves this subnet."""
        svc = _address(services_ip)
        return svc is not None and svc in self.network and svc not in _ends(self.network)


def _address(value: str | None) -> ipaddress.IPv4Address | None:
    """An agent's report, parsed (None: none, or not an address: nothing known)."""
    try:
        return ipaddress.IPv4Address(value) if value else None
    except ValueError:
        return None


def _ends(net: ipaddress.IPv4Network) -> tuple[ipaddress.IPv4Address, ...]:
    """The network and broadcast addresses: no host's (a /31 or /32 has none, RFC 3021)."""
    return (net.network_address, net.broadcast_address) if net.prefixlen <= 30 else ()


def check_station(node: str, mac: str | None, ip: str | None, services_ip: str | None,
                  access: AccessSubnet | None) -> None:
    """Raises InvalidInput, naming the address and the subnet, unless ``mac`` (if given)
    is a station's (unicast, not all zeros) and ``ip`` (if given) a host address a device
    at ``node`` can hold: not loopback, multicast, 0/8 or 240/4 (netfate.validators), not
    the node's access services address ``services_ip`` (its agent's report), and, when
    ``access`` is the node's access subnet (AccessSubnet.serves), inside it and neither its
    network or broadcast address nor its router. Pure: the API's body checks the formats
    already; this is for every path that records an association (API, UI, RADIUS)."""
    if mac is not None:
        try:
            unicast_mac(mac)
        except ValueError as exc:
            raise InvalidInput(f"mac: {exc}") from None
    if ip is None:
        return
    try:
        addr = ipaddress.IPv4Address(station_ipv4(ip))
    except ValueError as exc:
        raise InvalidInput(f"ip: {exc}") from None
    served = access if access is not None and access.serves(services_ip) else None
    where = f"{node}'s access subnet {served.network}" if served else f"node {node}"
    if addr == _address(services_ip):
        raise InvalidInput(f"ip {addr} is the address of the access services (DHCP, DNS, "
                           f"portal) of {where}, not a user's device's")
    if served is None:
        return  # no known access subnet: nothing more to check against
    net = served.network
    if addr not in net:
        raise InvalidInput(f"ip {addr} is not in {where} (the subnet its DHCP server hands "
                           "addresses out of): the user's traffic from it would never match "
                           "their steering there")
    if addr in _ends(net):
        kind = "network" if addr == net.network_address else "broadcast"
        raise InvalidInput(f"ip {addr} is the {kind} address of {where}, not a host's")
    if addr == served.gateway:
        raise InvalidInput(f"ip {addr} is the gateway of {where}, not a user's device's")
