"""Helpers of the catalogue NFs that rewrite addresses in the wire (nat, load-balancer).

Packed into those bundles as files/l3bump.py (catalogue.EXTRAS), imported as a sibling; their
state and ruleset helpers (conntrack, nft) are ctstate.py's, shared with the firewall.
Stdlib only; runs inside the NF's network namespace with "$NF_PYTHON".

Why an address and IP forwarding on a bridge: with br_netfilter, NAT applies to bridged IPv4.
Source NAT is done in the bridge's postrouting; the replies then come to the NAT address,
which only br0 answers ARP for, and their de-NAT changes the destination: br_netfilter
("bridged DNAT", net/bridge/br_netfilter_hooks.c) then looks the new destination up in the
NF's routing table and, when it leaves by br0, bridges the frame to the neighbour's MAC. A
DNAT (load balancer) takes the same path. So br0 carries an address, the NF has routes to the
rewritten destinations through br0, and ip_forward is on (without it the lookup of a
de-NATted reply fails and it is dropped). ICMP redirects are off: the NF is not a router.
"""

from __future__ import annotations

import ipaddress
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # checked in the source tree; in the bundle it is packed next to this file
    from netfate.catalogue._shared import ctstate
    from netfate.catalogue._shared import nfcommon as nf
else:
    import ctstate
    import nfcommon as nf
die = nf.die

BRIDGE = "br0"
MARK_OUT = 0x1  # entered on lan: user -> network
MARK_IN = 0x2  # entered on wan


# ---- values ----------------------------------------------------------------------------------
def ipv4(value: Any, where: str) -> str:
    """An IPv4 address string, or die naming `where`."""
    if not isinstance(value, str):
        die(f"{where}: must be an IPv4 address string")
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError as e:
        die(f"{where}: {e}")


cidr = nf.cidr  # an IPv4 network (host bits cleared), or die


def interface(value: Any, where: str) -> ipaddress.IPv4Interface:
    """An IPv4 address with its prefix length (e.g. 10.90.254.1/16), or die."""
    if not isinstance(value, str) or "/" not in value:
        die(f"{where}: must be an IPv4 address with a prefix length, e.g. 192.0.2.1/24")
    try:
        iface = ipaddress.IPv4Interface(value)
    except ValueError as e:
        die(f"{where}: {e}")
    _unicast_ip(iface.ip, where)
    if iface.network.prefixlen <= 30 and iface.ip in (iface.network.network_address,
                                                      iface.network.broadcast_address):
        die(f"{where}: {iface.ip} is the network or broadcast address of {iface.network}")
    return iface


def _unicast_ip(ip: ipaddress.IPv4Address, where: str) -> None:
    # br0 would take 0.0.0.0, 127.x or a multicast address; a DNAT to one goes nowhere
    if ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_reserved \
            or ip.is_link_local:
        die(f"{where}: {ip} is not a unicast host address (unspecified, loopback, "
            "multicast, link-local or reserved)")


def unicast(value: Any, where: str) -> str:
    """An IPv4 unicast host address string (see `ipv4`), or die naming `where`."""
    ip = ipv4(value, where)
    _unicast_ip(ipaddress.IPv4Address(ip), where)
    return ip


def gateway_in(gw: Any, iface: ipaddress.IPv4Interface, where: str) -> str:
    """A gateway address inside `iface`'s subnet (and not the NF's own address), or die."""
    g = ipv4(gw, where)
    if ipaddress.IPv4Address(g) not in iface.network:
        die(f"{where}: {g} is not inside {iface.network}, the subnet of address {iface}")
    if ipaddress.IPv4Address(g) == iface.ip:
        die(f"{where}: {g} is the NF's own address")
    return g


def bridge_marks(table: str, lan: str, wan: str) -> list[str]:
    """nft lines (replacing `table bridge <table>`) that mark each frame by its ingress port:
    in the inet hooks br_netfilter reports iifname br0, never the bridge port."""
    return [*nf.nft_replace(f"bridge {table}"),
            *nf.nft_bridge_prerouting(table, nf.nft_port_marks(lan, wan, MARK_OUT, MARK_IN))]


# ---- br0's address and routes ------------------------------------------------------------------
_run = ctstate.run


_sysctl = nf.sysctl


def addresses() -> list[str]:
    """br0's IPv4 addresses as "a.b.c.d/len"."""
    p = _run(["ip", "-j", "-4", "addr", "show", "dev", BRIDGE], "ip addr show", check=False)
    try:
        return [f"{a['local']}/{a['prefixlen']}" for ln in json.loads(p.stdout or "[]")
                for a in ln.get("addr_info", [])]
    except (ValueError, KeyError):
        return []


def set_l3(address: str, gateway: str | None, onlink: list[str],
           extra: tuple[str, ...] = ()) -> None:
    """Converge br0 to exactly `address` (plus the `extra` "a.b.c.d/32" addresses br0 answers
    ARP for), a default route via `gateway` (if any) and on-link routes through br0 to
    `onlink` networks (where rewritten destinations live). Idempotent."""
    _sysctl("net.ipv4.ip_forward", "1")
    for dev in ("all", "default", BRIDGE):
        _sysctl(f"net.ipv4.conf.{dev}.send_redirects", "0")
    have, want = addresses(), [address, *extra]
    for a in have:
        if a not in want:
            _run(["ip", "addr", "del", a, "dev", BRIDGE], f"removing {a} from {BRIDGE}",
                 check=False)
    for a in want:
        if a not in have:
            _run(["ip", "addr", "add", a, "dev", BRIDGE], f"adding {a} to {BRIDGE}")
    _run(["ip", "route", "flush", "proto", "static", "dev", BRIDGE], "flushing routes",
         check=False)
    if gateway:
        _run(["ip", "route", "replace", "default", "via", gateway, "dev", BRIDGE,
              "proto", "static"], f"default route via {gateway}")
    connected = ipaddress.IPv4Interface(address).network
    for net in onlink:
        n = ipaddress.IPv4Network(net)
        if n.subnet_of(connected) or (gateway and n.prefixlen == 0):
            continue  # the connected route (or the default route) already covers it
        dest = "default" if n.prefixlen == 0 else str(n)
        _run(["ip", "route", "replace", dest, "dev", BRIDGE, "proto", "static"],
             f"route to {dest} through {BRIDGE}")
