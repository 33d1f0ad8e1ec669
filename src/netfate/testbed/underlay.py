"""The testbed's infrastructure network and the overlay on it (issue 11).

Each node with `overlay: true` gets an underlay bridge (`fate-<node>-ul`, L2 learning, no
controller) whose own interface holds the node's tunnel endpoint (an address of the
topology's `overlay_subnet`). The underlay bridges are joined by veth links along the
uplinks (the infrastructure links: CPE to PE, PE to DC), never through the access switches.
Every node's LSI then gets one VXLAN port per other overlay node (`create_tunnel`, the
network driver's), marked with `netfate-kind=tunnel` and the peer's name, which its agent
reports (netfate.agent.ports) together with its endpoint.

Emulation only (a real node has its own ovs-vswitchd and kernel routes): all nodes share one
userspace ovs-vswitchd, so the route to a peer is chosen by the sending node's packet mark
(`egress_pkt_mark` = the endpoint as a 32-bit number, plus an `ovs/route` per pair), the
peer's MAC is set in the tunnel neighbour cache at once (OVS re-learns it by ARP later, which
the kernel answers between two of its own addresses only with accept_local on the underlay
interfaces), and each pair of nodes uses a UDP port of its own, so the daemon can
tell which node a tunnel packet is for without `local_ip` (which OVS 3.1 cannot combine with
a marked route).
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from netfate import naming
from netfate.drivers.ovs import OvsNetwork, OvsServer
from netfate.errors import DriverError
from netfate.proc import run
from netfate.testbed.topology import NodeSpec, Topology

BASE_UDP_PORT = 10000  # + one per pair of nodes (see pair_port)
UNDERLAY_MTU = 9216    # room for VXLAN's 50 bytes over the 9000-byte links


@dataclass(frozen=True)
class Endpoint:
    node: str
    index: int       # position among the topology's overlay nodes
    ip: str
    bridge: str      # the underlay bridge holding `ip`

    @property
    def mark(self) -> int:
        return int(ipaddress.IPv4Address(self.ip))


def underlay_bridge(node: str) -> str:
    return naming.ifname(node, "ul")


def tunnel_port(node: str, peer: str) -> str:
    """The LSI port of `node` toward `peer`."""
    return naming.ifname(node, "t", peer)


def endpoints(topo: Topology) -> dict[str, Endpoint]:
    """Node -> its tunnel endpoint, for the nodes on the overlay (in topology order)."""
    net = ipaddress.IPv4Network(topo.overlay_subnet)
    hosts = net.hosts()
    out: dict[str, Endpoint] = {}
    for n in topo.nodes:
        if n.overlay:
            out[n.name] = Endpoint(n.name, len(out), str(next(hosts)), underlay_bridge(n.name))
    return out


def pair_port(a: Endpoint, b: Endpoint) -> int:
    """The UDP port of the tunnel between a and b, the same seen from either end."""
    i, j = sorted((a.index, b.index))
    return BASE_UDP_PORT + j * (j - 1) // 2 + i


def _vsctl(server: OvsServer, *args: str) -> None:
    run(["ovs-vsctl", f"--db={server.db}", *args], env=server.env)


def _appctl(server: OvsServer, *args: str, check: bool = True) -> str:
    cp = run(["ovs-appctl", "-t", str(server.rundir / "ovs-vswitchd.ctl"), *args],
             env=server.env, check=check)
    return cp.stdout.decode()


def _ip(*args: str, check: bool = True) -> None:
    run(["ip", *args], check=check)


def _mac(ifname: str) -> str:
    with open(f"/sys/class/net/{ifname}/address") as f:
        return f.read().strip()


def _link(node: NodeSpec) -> tuple[str, str]:
    """The underlay veth of a node's uplink: its end, and its uplink's end."""
    assert node.uplink is not None
    return naming.ifname(node.name, "uu"), naming.ifname(node.uplink, node.name, "u")


def up(topo: Topology, server: OvsServer, net: OvsNetwork,
       progress: Callable[[str], None] = lambda _: None) -> dict[str, str]:
    """Build the underlay and the full mesh of tunnels (idempotent), saying which node's
    tunnels it makes (N overlay nodes make N*(N-1) tunnel ports, each a few OVS calls: ~4000
    at the 64 nodes a topology may have, minutes). Returns node -> endpoint."""
    eps = endpoints(topo)
    subnet = ipaddress.IPv4Network(topo.overlay_subnet)
    for ep in eps.values():
        _vsctl(server, "--may-exist", "add-br", ep.bridge, "--", "set", "bridge", ep.bridge,
               "datapath_type=netdev", "fail_mode=standalone")
        _ip("link", "set", ep.bridge, "mtu", str(UNDERLAY_MTU), "up")
        _ip("addr", "replace", f"{ep.ip}/{subnet.prefixlen}", "dev", ep.bridge)
        # The tunnel neighbour cache set below expires after 15 idle minutes; OVS then asks
        # by ARP, which the kernel answers between two of its own addresses only with
        # accept_local (and no reverse-path filter) on the underlay interfaces, and only from
        # the interface that has the address with arp_ignore (else every underlay interface
        # the flooded request reaches answers it with its own MAC).
        for key, value in (("accept_local", "1"), ("rp_filter", "0"), ("arp_ignore", "1"),
                           ("arp_announce", "2")):
            run(["sysctl", "-qw", f"net.ipv4.conf.{ep.bridge}.{key}={value}"])
    for n in topo.nodes:
        if n.uplink is None or n.name not in eps or n.uplink not in eps:
            continue
        mine, theirs = _link(n)
        _ip("link", "add", mine, "mtu", str(UNDERLAY_MTU), "type", "veth", "peer", "name",
            theirs, "mtu", str(UNDERLAY_MTU), check=False)  # kept when up again
        for dev in (mine, theirs):
            _ip("link", "set", dev, "up")
        _vsctl(server, "--may-exist", "add-port", eps[n.name].bridge, mine)
        _vsctl(server, "--may-exist", "add-port", eps[n.uplink].bridge, theirs)
    for k, a in enumerate(eps.values(), 1):
        if len(eps) > 1:
            progress(f"overlay: node {a.node}'s {len(eps) - 1} tunnels ({k}/{len(eps)})")
        for b in eps.values():
            if a is b:
                continue
            # This node's packets (its mark) reach b's endpoint through its own underlay
            # bridge, whose neighbour entry for b is b's bridge MAC.
            out = _appctl(server, "ovs/route/add", f"{b.ip}/32", a.bridge, f"pkt_mark={a.mark}",
                          check=False)
            if "OK" not in out and f"{b.ip}/32 MARK {a.mark}" not in \
                    _appctl(server, "ovs/route/show"):
                raise DriverError(f"overlay: no route from {a.node} to {b.node} ({out.strip()})")
            _appctl(server, "tnl/neigh/set", a.bridge, b.ip, _mac(b.bridge))
            net.create_tunnel(
                naming.lsi(a.node), tunnel_port(a.node, b.node), remote_ip=b.ip,
                udp_port=pair_port(a, b), egress_mark=a.mark,
                external_ids={"netfate-kind": "tunnel", "netfate-peer-node": b.node,
                              "netfate-endpoint": a.ip, "netfate-peer-endpoint": b.ip})
    return {n: ep.ip for n, ep in eps.items()}


def down_links(topo: Topology) -> None:
    """The underlay veths (the rest goes with the OVS daemons and the prefix sweep)."""
    for n in topo.nodes:
        if n.uplink is not None:
            with contextlib.suppress(Exception):
                _ip("link", "del", _link(n)[0], check=False)
