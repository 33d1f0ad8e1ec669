"""`netfate testbed move CLIENT NODE`: a station leaves one access point for another.

The client's LAN link to its old CPE goes down and a link to the new CPE comes up with the
same MAC, as when a Wi-Fi station roams within one ESS: it keeps its address, its routes and
its open sockets. The new link's switch port carries the station's MAC (attached-mac), which
the new node's agent reports as client.associated (hostapd's AP-STA-CONNECTED); the old
node's agent reports client.disassociated.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from netfate import paths
from netfate.drivers import netns
from netfate.drivers.ovs import OvsNetwork, OvsServer
from netfate.errors import Conflict, InvalidInput
from netfate.testbed import host_link, lifecycle
from netfate.testbed.topology import Topology

NUD_REACHABLE, NUD_STALE = 0x02, 0x04


def _inside(ns: str) -> tuple[list[str], str | None, list[tuple[str, str]]]:
    """The client's IPv4 addresses on eth0 (CIDR), its default gateway and its resolved
    neighbours (IP, MAC)."""
    addrs: list[str] = []
    neigh: list[tuple[str, str]] = []
    gw = None
    with netns.iproute(ns) as ipr:
        idx = netns.link_index(ipr, "eth0")
        if idx is not None:
            for a in ipr.get_addr(family=2, index=idx):
                addrs.append(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
            for n in ipr.get_neighbours(family=2, ifindex=idx):
                mac = n.get_attr("NDA_LLADDR")
                if mac and n["state"] & (NUD_REACHABLE | NUD_STALE | 0x08 | 0x10):
                    neigh.append((n.get_attr("NDA_DST"), mac))
        for r in ipr.get_routes(family=2):
            if r["dst_len"] == 0 and r.get_attr("RTA_GATEWAY"):
                gw = r.get_attr("RTA_GATEWAY")
    return addrs, gw, neigh


def _restore_neighbours(ns: str, neigh: list[tuple[str, str]]) -> None:
    """A roaming station keeps its interface, so its ARP cache: the recreated eth0 gets the
    entries back (stale: used at once, confirmed by the kernel later). Without them the
    first packet waits on ARP, whose retry comes a whole second later."""
    with netns.iproute(ns) as ipr:
        idx = netns.link_index(ipr, "eth0")
        for ip, mac in neigh:
            with contextlib.suppress(Exception):
                ipr.neigh("replace", dst=ip, lladdr=mac, ifindex=idx, state=NUD_STALE)


def move(client: str, node: str) -> dict[str, Any]:
    st = lifecycle.load_state()
    if st is None:
        raise Conflict("the testbed is not up; run 'netfate testbed up'")
    topo = Topology.model_validate(st["topology"])
    h = topo.host(client)
    if h.role != "client":
        raise InvalidInput(f"{client} is {h.a_role}: only clients roam")
    target = topo.node(node)
    if target.role != "cpe":
        raise InvalidInput(f"{node} is a {target.role} node: clients attach to CPEs")
    if h.attach == node:
        return {"client": client, "node": node, "moved": False}
    if not netns.exists(h.netns):
        raise Conflict(f"client {client} has no namespace ({h.netns}): is the testbed up?")
    old = topo.node(h.attach)
    # The station keeps the MAC it has now, which may not be the topology's: a device
    # that changed (randomised) its MAC roams with that one (probe of 2026-12-06).
    now = host_link.read(h.netns)
    mac = (now.mac if now else None) or h.mac or h.default_mac()
    old_port = topo.host_port(h)
    moved = h.model_copy(update={"attach": node})
    new_port = topo.host_port(moved)
    addrs, gw, neigh = _inside(h.netns)
    net = OvsNetwork(OvsServer(paths.ovs_dir()))
    try:
        t0 = time.time()
        # Leave: the old link goes (its switch port and both veth ends). The port's
        # removal is waited on (until ovs-vswitchd has applied it), so the old node's
        # agent reports the station gone before the new one reports it associated.
        net.delete_ports(old.lsi, [old_port])
        t_unport = time.time()
        netns.delete_link(old_port)
        t_left = time.time()
        # Join: a new link to the new CPE, same MAC, same address and route.
        with netns.iproute() as ipr:
            netns.veth_into(new_port, h.netns, "eth0", ipr=ipr, mac=mac, mtu=topo.mtu)
        netns.configure_inside(h.netns, "eth0", addresses=addrs, gateway=gw)
        _restore_neighbours(h.netns, neigh)
        t_link = time.time()
        # Associate: the port carries the station's MAC, the agent's sign of an association.
        # The agent sees that row as soon as it is written (an OVSDB watch), while
        # ovs-vswitchd is still adding the port, so the association is stamped when it is
        # written: what follows, the port's addition included, counts against the handover.
        t_assoc = time.time()
        net.create_ports(target.lsi, [(new_port, None)], external_ids={
            new_port: {"netfate-kind": "access", "attached-mac": mac}})
        t_port = time.time()
    finally:
        net.close()
    # Where the time went (ms): the old switch port (until ovs-vswitchd has applied it),
    # the old link, the new link configured, the new switch port (likewise).
    steps = {"old_port_ms": t_unport - t0, "old_link_ms": t_left - t_unport,
             "new_link_ms": t_link - t_left, "new_port_ms": t_port - t_assoc}
    hosts = tuple(moved if x.name == client else x for x in topo.hosts)
    st["topology"] = topo.model_copy(update={"hosts": hosts}).model_dump(mode="json")
    lifecycle.state_file().write_text(json.dumps(st, indent=1))
    return {"client": client, "from": old.name, "node": node, "moved": True, "mac": mac,
            "addresses": addrs, "left_at": t_left, "link_up_at": t_link,
            "associated_at": t_assoc, "seconds": round(t_port - t0, 4),
            "steps_ms": {k: round(v * 1000, 1) for k, v in steps.items()}}
