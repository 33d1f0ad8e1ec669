"""Addresses of each CPE's access services, derived from the topology (pure: no I/O).

The testbed is one flat subnet. CPE number k (0-based, in the topology's order) gets the
/24-sized block 16+k of it: its services address is .1 of that block, its dynamic DHCP pool
.10-.250. Clients keep the whole subnet's netmask and route through the topology's gateway.
Authenticated users get a stable Framed-IP from the RADIUS pool instead, so the pools must
stay clear of it.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from netfate import naming
from netfate.errors import InvalidInput

FRAMED_POOL = "10.90.100.0/22"  # RadiusSettings.pool's default (NETFATE_RADIUS_POOL)
FIRST_BLOCK = 16  # CPE k uses the 256-address block 16+k of the subnet
BLOCK = 256
SERVICES_OFFSET = 1
POOL_FIRST_OFFSET = 10
POOL_LAST_OFFSET = 250
PORTAL_NAME = "portal.netfate"
INTERNET_NAME = "inet.netfate"
# Where the switch sends a captive client's DNS (controller.model.ServicesAttachment's
# captive_dns_port): the services' captive resolver (access/captive_dns.py).
CAPTIVE_DNS_PORT = 5353
# The captive portal API (RFC 8908) on the portal, announced by DHCP option 114 (RFC 8910).
CAPPORT_PATH = "/capport/api"


def capport_url(host: str = PORTAL_NAME) -> str:
    """The API's URL as DHCP announces it: https (RFC 8908 section 3), by name (RFC 8910
    section 2: no IP literal; the portal's certificate names it)."""
    return f"https://{host}{CAPPORT_PATH}"


def user_portal_url(host: str = PORTAL_NAME) -> str:
    """The login page as the API names it (RFC 8908 section 5: accessed over TLS)."""
    return f"https://{host}/login"


@dataclass(frozen=True)
class CpeAccess:
    node: str
    services_ip: str
    services_mac: str
    prefixlen: int
    pool_start: str
    pool_end: str
    router: str
    dns: str

    @property
    def netmask(self) -> str:
        return str(ipaddress.IPv4Network(f"0.0.0.0/{self.prefixlen}").netmask)

    @property
    def services_cidr(self) -> str:
        return f"{self.services_ip}/{self.prefixlen}"

    @property
    def netns(self) -> str:
        return services_netns(self.node)

    @property
    def host_if(self) -> str:
        return services_host_if(self.node)


def services_netns(node: str) -> str:
    """The namespace holding a CPE's dnsmasq and the portal's listening socket."""
    return f"{naming.PREFIX}s-{node}"


def services_host_if(node: str) -> str:
    """The root-namespace end of the services veth (the port on the CPE's bridge)."""
    return naming.ifname(node, "svc")


def services_mac(node: str) -> str:
    """Locally administered unicast (02:...), stable per node name."""
    h = hashlib.sha1(node.encode()).hexdigest()
    return "02:fb:" + ":".join(h[i : i + 2] for i in range(0, 8, 2))


def _net(subnet: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(subnet)
    except ValueError as exc:
        raise InvalidInput(f"subnet {subnet!r} is not an IPv4 network: {exc}") from exc


def _addr(kind: str, value: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value)
    except ValueError as exc:
        raise InvalidInput(f"{kind} {value!r} is not an IPv4 address") from exc


def cpe_access(
    node: str,
    services_ip: str,
    pool_start: str,
    pool_end: str,
    prefixlen: int,
    router: str,
    *,
    dns: str | None = None,
    framed_pool: str = FRAMED_POOL,
) -> CpeAccess:
    """One CPE's access addressing given explicitly (the CLI's --services-ip ...), checked:
    services address and pool in one subnet, outside the Framed-IP pool, router elsewhere."""
    try:
        naming.check_token("node", node)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    if not 8 <= prefixlen <= 30:
        raise InvalidInput(f"prefixlen {prefixlen} must be 8-30")
    svc = _addr("services address", services_ip)
    start = _addr("pool start", pool_start)
    end = _addr("pool end", pool_end)
    gw = _addr("router", router)
    net = ipaddress.IPv4Network(f"{svc}/{prefixlen}", strict=False)
    framed = _net(framed_pool)
    usable = (int(net.network_address) + 1, int(net.broadcast_address) - 1)
    if not start <= end:
        raise InvalidInput(f"{node}: pool {start}-{end} is empty (start after end)")
    for kind, a in (("services address", svc), ("pool start", start), ("pool end", end),
                    ("router", gw)):
        if not usable[0] <= int(a) <= usable[1]:
            raise InvalidInput(f"{node}: {kind} {a} is not a host address of {net}")
    if start <= svc <= end:
        raise InvalidInput(f"{node}: services address {svc} is inside its pool {start}-{end}")
    if start <= gw <= end or gw == svc:
        raise InvalidInput(f"{node}: pool {start}-{end} or services address {svc} "
                           f"collides with the gateway {gw}")
    if int(start) <= int(framed.broadcast_address) and int(framed.network_address) <= int(end):
        raise InvalidInput(f"{node}: pool {start}-{end} overlaps the RADIUS Framed-IP pool "
                           f"{framed}")
    if svc in framed:
        raise InvalidInput(f"{node}: services address {svc} is in the RADIUS Framed-IP pool "
                           f"{framed}")
    return CpeAccess(
        node=node, services_ip=str(svc), services_mac=services_mac(node), prefixlen=prefixlen,
        pool_start=str(start), pool_end=str(end), router=str(gw),
        dns=str(svc) if dns is None else str(_addr("dns", dns)),
    )


def for_index(
    subnet: str,
    gateway: str,
    node: str,
    index: int,
    *,
    framed_pool: str = FRAMED_POOL,
    reserved: Iterable[str] = (),
) -> CpeAccess:
    """The addressing of CPE number ``index`` (0-based) of the topology."""
    net = _net(subnet)
    gw = _addr("gateway", gateway)
    if gw not in net:
        raise InvalidInput(f"gateway {gw} is not in the subnet {net}")
    if index < 0:
        raise InvalidInput(f"{node}: CPE index {index} is negative")
    block = int(net.network_address) + (FIRST_BLOCK + index) * BLOCK
    if block + BLOCK - 1 > int(net.broadcast_address):
        raise InvalidInput(f"{node} (CPE #{index}): its pool (block {FIRST_BLOCK + index} of "
                           f"256 addresses) does not fit in the subnet {net}; use a larger "
                           "subnet or fewer CPEs")
    start = ipaddress.IPv4Address(block + POOL_FIRST_OFFSET)
    end = ipaddress.IPv4Address(block + POOL_LAST_OFFSET)
    for r in (_addr("reserved address", r) for r in reserved):
        if start <= r <= end:
            raise InvalidInput(f"{node} (CPE #{index}): its pool {start}-{end} contains the "
                               f"reserved address {r}")
    return cpe_access(
        node, str(ipaddress.IPv4Address(block + SERVICES_OFFSET)), str(start), str(end),
        net.prefixlen, str(gw), framed_pool=framed_pool,
    )


def plan(
    subnet: str,
    gateway: str,
    cpes: Sequence[str],
    *,
    framed_pool: str = FRAMED_POOL,
    reserved: Iterable[str] = (),
) -> dict[str, CpeAccess]:
    """Each CPE's addressing by its index in ``cpes`` (the topology's CPE nodes, in order).
    ``reserved``: static addresses (the testbed's hosts) that no pool may hand out."""
    if len(set(cpes)) != len(cpes):
        raise InvalidInput(f"CPE names repeat: {list(cpes)}")
    fixed = list(reserved)
    return {node: for_index(subnet, gateway, node, k, framed_pool=framed_pool, reserved=fixed)
            for k, node in enumerate(cpes)}


def dns_records(cpe: CpeAccess, internet_address: str = "10.255.0.1") -> dict[str, str]:
    """The names the services' DNS answers itself (no upstream resolver)."""
    return {PORTAL_NAME: cpe.services_ip, INTERNET_NAME: internet_address}
