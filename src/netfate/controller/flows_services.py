"""A CPE's access services on its LSI (DHCP, DNS, the captive portal): the flows that take
unauthenticated clients' DHCP, DNS and HTTP to the services namespace. Pure, like flows.py
(split out of it by job; flows.build calls `services`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from netfate.controller import pipeline as pl
from netfate.controller.flowmod import ETH_ARP, ETH_IPV4, FlowMod
from netfate.controller.flows import (
    BROADCAST,
    DHCP_SERVER,
    DNS,
    HTTP,
    TCP,
    UDP,
    _dhcp,
    _flow,
    _Ports,
)
from netfate.controller.model import ServicesAttachment, SwitchState
from netfate.controller.pipeline import Kind

# The captive portal API's port on the portal (RFC 8908 section 3: https; access/tls.py).
HTTPS = 443


def _local(svc: ServicesAttachment) -> list[dict[str, Any]]:
    """IPv4 matches for traffic a client may always send to its CPE: DNS and the portal."""
    return _dns_to(svc.resolver) + _portal(svc)


def _dns_to(resolver: str | None) -> list[dict[str, Any]]:
    """DNS over UDP and TCP, to ``resolver`` (None: to any address)."""
    ip4: dict[str, Any] = {"eth_type": ETH_IPV4}
    if resolver is not None:
        ip4["ipv4_dst"] = resolver
    return [{**ip4, "ip_proto": UDP, "udp_dst": DNS}, {**ip4, "ip_proto": TCP, "tcp_dst": DNS}]


def _portal(svc: ServicesAttachment) -> list[dict[str, Any]]:
    """The portal's login pages (http) and its captive portal API (https), which a device
    asks before and after login."""
    return [{"eth_type": ETH_IPV4, "ipv4_dst": svc.ip, "ip_proto": TCP, "tcp_dst": p}
            for p in sorted({HTTP, HTTPS, svc.portal_port})]


def services(state: SwitchState, svc: ServicesAttachment, port: _Ports) -> Iterator[FlowMod]:
    ident = f"{state.node}:services"
    s = port(svc.port)
    access = tuple(port(p) for p in state.access_ports)
    for p in access:
        # A client the controller doesn't know yet: DHCP gives it a lease, and the copy to the
        # controller tells the orchestrator which port it is behind (ClientSeen). Metered
        # per port (DHCP starvation): meter id = the port's number, unique on the switch.
        yield _flow(Kind.SERVICES, ident, pl.INGRESS, pl.P_DHCP_NEW, _dhcp(in_port=p),
                    (s, "controller"), meter_id=p if state.dhcp_pps else None)
    # Only ARP and IPv4 ever reach a client (no IPv6 until the platform serves it).
    for et in (ETH_ARP, ETH_IPV4):
        yield _flow(Kind.SERVICES, ident, pl.INGRESS, pl.P_SERVICES_BCAST,
                    {"in_port": s, "eth_dst": BROADCAST, "eth_type": et}, access)
    yield _flow(Kind.SERVICES, ident, pl.INGRESS, pl.P_SERVICES_DHCP,
                {"in_port": s, "eth_type": ETH_IPV4, "ip_proto": UDP, "udp_src": DHCP_SERVER},
                access)
    for m in _local(svc):
        yield _flow(Kind.SERVICES, ident, pl.STEER, pl.P_LOCAL,
                    {**m, "metadata": (pl.UP, pl.DIR_MASK)}, (s,))
    for m in _portal(svc):
        yield _flow(Kind.SERVICES, ident, pl.CAPTIVE, pl.P_CAPTIVE_ALLOW, m, (s,))
    # Before login, DNS to any resolver goes to the captive resolver (its port marks it as
    # such for the services namespace, which takes it whatever the destination address):
    # every name is answered with the portal's address, and nothing is ever looked up
    # outside (no DNS tunnelling before login). The reply gets port 53 back in _user.
    for m in _dns_to(None):
        port_field = "udp_dst" if m["ip_proto"] == UDP else "tcp_dst"
        yield _flow(Kind.SERVICES, ident, pl.CAPTIVE, pl.P_REDIRECT, m, (s,),
                    set_fields=(("eth_dst", svc.mac), (port_field, svc.captive_dns_port)))
    # The redirect: any other HTTP goes to the portal by rewriting only the destination MAC.
    # The portal's namespace takes it whatever the destination IP (an nft `redirect` there),
    # so its replies leave with the address the browser asked for: the switch needs no state
    # and no reverse rewrite, and the browser's TCP connection stays consistent.
    yield _flow(Kind.SERVICES, ident, pl.CAPTIVE, pl.P_REDIRECT,
                {"eth_type": ETH_IPV4, "ip_proto": TCP, "tcp_dst": HTTP}, (s,),
                set_fields=(("eth_dst", svc.mac),))


