"""A host's link to its node, converged on a testbed that is up again: kept where it is
(with the addresses DHCP or a roam gave it), moved where `testbed move` put it, rebuilt when
only half of it is left."""

from __future__ import annotations

import contextlib
from typing import Any

from netfate import naming
from netfate.drivers import netns
from netfate.drivers.ovs import OvsNetwork
from netfate.testbed.topology import HostSpec, Topology


def as_moved(topo: Topology, state: dict[str, Any]) -> Topology:
    """``topo`` with each host attached where the testbed that is up (its ``state``, as
    lifecycle.load_state() reads it) has it: a client that roamed stays on its new CPE.
    Hosts or nodes the state does not know are left as ``topo`` says. Pure."""
    try:
        was = Topology.model_validate(state.get("topology") or {})
    except ValueError:
        return topo
    where = {h.name: h.attach for h in was.hosts}
    nodes = {n.name for n in topo.nodes}
    hosts = tuple(h.model_copy(update={"attach": where[h.name]})
                  if where.get(h.name, h.attach) != h.attach and where[h.name] in nodes else h
                  for h in topo.hosts)
    return topo.model_copy(update={"hosts": hosts})


def port_ids(topo: Topology, h: HostSpec) -> dict[str, str]:
    """The external_ids of the host's switch port: a client on a CPE is an access port
    (its MAC is what the agent reports associated), anything else infrastructure."""
    if topo.node(h.attach).role == "cpe" and h.role == "client":
        return {"netfate-kind": "access", "attached-mac": h.mac or h.default_mac()}
    return {"netfate-kind": "infra"}


def stale_ports(topo: Topology, h: HostSpec) -> list[tuple[str, str]]:
    """(LSI, port) a roaming client may have on CPEs other than its own. Pure."""
    if h.role != "client":
        return []
    return [(n.lsi, naming.ifname(n.name, h.name)) for n in topo.nodes
            if n.role == "cpe" and n.name != h.attach]


def keep_link(topo: Topology, h: HostSpec, ipr: Any, net: OvsNetwork) -> bool:
    """Converge what is there; True if the host's link exists and was kept (its switch
    port re-applied), False if the caller must make it (what was half left of it, an eth0
    whose peer is gone, has been removed). Links of the client to other CPEs go."""
    for lsi, port in stale_ports(topo, h):
        if netns.link_index(ipr, port) is not None:
            net.delete_ports(lsi, [port])
            netns.delete_link(port, ipr=ipr)
    port = topo.host_port(h)
    if netns.exists(h.netns) and netns.link_index(ipr, port) is not None:
        net.create_ports(topo.node(h.attach).lsi, [(port, None)],
                         external_ids={port: port_ids(topo, h)})
        return True
    if netns.exists(h.netns):
        with netns.iproute(h.netns) as nipr:
            idx = netns.link_index(nipr, "eth0")
            if idx is not None:
                with contextlib.suppress(Exception):
                    nipr.link("del", index=idx)
    return False
