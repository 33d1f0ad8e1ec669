"""A testbed client that joins again with a new MAC: a phone's randomised MAC (per network, or
per connection, RFC 9797's "MAC address randomization").

The station leaves (its link and switch port go) and associates again at the same CPE with
another MAC and no address, as a device that changed its MAC does: to the network it is a
new device, which starts with DHCP and the captive portal. The new switch port carries the
new MAC (attached-mac), which the node's agent reports as a new association.
"""

from __future__ import annotations

import json
from typing import Any

from netfate import paths
from netfate.controller.model import Mac
from netfate.drivers import netns
from netfate.drivers.ovs import OvsNetwork, OvsServer
from netfate.errors import Conflict, InvalidInput
from netfate.testbed import lifecycle
from netfate.testbed.topology import Topology


def _check_mac(mac: str) -> str:
    from pydantic import TypeAdapter, ValidationError

    try:
        return str(TypeAdapter(Mac).validate_python(mac))
    except ValidationError as exc:
        raise InvalidInput(f"{mac!r} is not a unicast MAC address: "
                           f"{exc.errors()[0]['msg']}") from exc


def new_mac(client: str, mac: str) -> dict[str, Any]:
    """Re-associate ``client`` at its CPE with ``mac``; returns the old and the new MAC.
    InvalidInput for a non-client host or a bad MAC; Conflict when the testbed is not up."""
    mac = _check_mac(mac)
    st = lifecycle.load_state()
    if st is None:
        raise Conflict("the testbed is not up; run 'netfate testbed up'")
    topo = Topology.model_validate(st["topology"])
    h = topo.host(client)
    if h.role != "client":
        raise InvalidInput(f"{client} is {h.a_role}: only clients change their MAC")
    if not netns.exists(h.netns):
        raise Conflict(f"client {client} has no namespace ({h.netns}): is the testbed up?")
    old = h.mac or h.default_mac()
    if any((x.mac or x.default_mac()) == mac for x in topo.hosts):
        raise InvalidInput(f"{mac} is already the MAC of a testbed host")
    node = topo.node(h.attach)
    port = topo.host_port(h)
    net = OvsNetwork(OvsServer(paths.ovs_dir()))
    try:
        net.delete_ports(node.lsi, [port])
        netns.delete_link(port)
        netns.veth_into(port, h.netns, "eth0", mac=mac, mtu=topo.mtu)
        netns.configure_inside(h.netns, "eth0")  # no address: a new device starts with DHCP
        net.create_ports(node.lsi, [(port, None)], external_ids={
            port: {"netfate-kind": "access", "attached-mac": mac}})
    finally:
        net.close()
    changed = h.model_copy(update={"mac": mac})
    hosts = tuple(changed if x.name == client else x for x in topo.hosts)
    st["topology"] = topo.model_copy(update={"hosts": hosts}).model_dump(mode="json")
    lifecycle.state_file().write_text(json.dumps(st, indent=1))
    return {"client": client, "node": node.name, "old_mac": old, "mac": mac}
