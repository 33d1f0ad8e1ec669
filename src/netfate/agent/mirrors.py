"""A troubleshooting probe's copy of a user's traffic at this node (port mirroring).

The orchestrator's probes (orchestrator/troubleshoot.py) are operator-owned NFs beside the
user's path, not in it: the controller owns the path's flows. To see the user's packets at a
point, the probe's `lan` port becomes the output of an OVS mirror of the ports the user's
traffic crosses here: at the user's CPE, the access port their device is attached to (by
its MAC, as the agent reports stations); at a node above, the links toward the user's CPE.
The copies leave the path untouched (the Glasgow paper's troubleshooting "from many points
at once", section V.B, without moving the user's traffic). The mirror goes with the probe:
`node.remove_nf` deletes the mirrors sending to an NF's ports.
"""

from __future__ import annotations

from typing import Any

from netfate.bus.messages import MirrorSpec, SwitchPorts
from netfate.errors import InvalidInput, NotFound
from netfate.node import NodeDrivers


def mirror_name(instance_id: str) -> str:
    return f"netfate-ts-{instance_id}"


def _output(node: NodeDrivers, instance_id: str) -> str:
    """The probe's first port (its lan side) on the switch. NotFound if no such NF here."""
    info = node.driver_of(instance_id).info(instance_id)
    if not info.ports:
        raise InvalidInput(f"NF {instance_id} has no port to send copies to")
    return info.ports[0].host_if


def selected_ports(ports: SwitchPorts, spec: MirrorSpec, node: str) -> list[str]:
    """The switch ports `spec` names, from the agent's view of its switch. InvalidInput if it
    names neither a station nor a peer node; NotFound if there is no such port here."""
    if spec.station_mac is not None:
        port = ports.stations.get(spec.station_mac.lower())
        if port is None:
            raise NotFound(f"no station {spec.station_mac} is attached to {node}")
        return [port]
    if spec.peer_node is not None:
        links = sorted(p for p, peer in ports.links.items() if peer == spec.peer_node)
        if not links:
            raise NotFound(f"{node} has no link toward {spec.peer_node}")
        return links
    raise InvalidInput("a mirror names a station (station_mac) or a peer node (peer_node)")


def mirror(node: NodeDrivers, ports: SwitchPorts, instance_id: str,
           spec: MirrorSpec) -> dict[str, Any]:
    """Copies of what crosses the ports `spec` names go to the probe `instance_id`:
    {"mirror": name, "ports": [...], "output": port}. Idempotent (the probe's mirror is
    replaced). The errors of selected_ports and of the network driver."""
    out = _output(node, instance_id)
    sel = selected_ports(ports, spec, node.name)
    name = mirror_name(instance_id)
    node.network.create_mirror(node.lsi, name, sel, out)
    return {"mirror": name, "ports": sel, "output": out}


def unmirror(node: NodeDrivers, instance_id: str) -> dict[str, Any]:
    """The probe's mirrors removed: {"removed": [names]} (none: a no-op)."""
    return {"removed": node.network.delete_mirrors(node.lsi, name=mirror_name(instance_id))}
