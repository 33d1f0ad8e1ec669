"""The orchestrator's troubleshooting probes on the network: their addresses, MACs and the TS
rules that carry their own traffic. Pure: decided from the switches' port reports.

A probe (the catalogue's troubleshooter, operator-owned) sits beside the user's path: its
`lan` port gets copies of the user's traffic (agent/mirrors.py), its `wan` side is a station
of the access subnet with an address the orchestrator gives it, so its pings and traceroutes
are evidence (Glasgow paper, section V.B). The controller's pipeline forwards nothing from
an NF port that no chain names, so each probe gets its own TS rules (NNF paper, Table I),
above the controller's flows, for its MAC only:

- at its node: its frames (by source MAC) out of the node's uplink, or at the top of the
  tree (no uplink) out of the node's host ports (the internet's, a server's); frames for its
  MAC into its wan port; at the user's CPE, frames to the user's device straight to their
  access port, so its ping of the device tests their access link, not their NFs (as the
  direct mode's probe in front of the chain does, troubleshoot/splice);
- at each switch above its node: frames for its MAC down the link toward it, and back down
  the same link when they came up it (OpenFlow never outputs to the ingress port unless
  told to: a device under the same CPE answering the probe).

Addresses come from the top of the access subnet (as the direct mode's, troubleshoot/ask),
never the gateway or an address a user holds; the MAC is derived from the address, so a
neighbour cache that still holds an address from an earlier question holds the right MAC.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from netfate.bus.messages import SwitchPorts
from netfate.errors import InvalidInput

PRIORITY = 60000          # TS rule priority (pipeline.P_TS_RULE_BASE + this): above operators'
PRIORITY_EXACT = 60001    # a narrower rule of the same probe (hairpin, to the user's device)
TOP_CANDIDATES = 64       # addresses looked at, from the subnet's top down
RULE_PREFIX = "troubleshoot:"  # every probe rule's id (recovery removes them all at start)


def addresses(subnet: str, gateway: str, taken: Iterable[str], n: int) -> list[str]:
    """`n` addresses with the subnet's prefix length ("a.b.c.d/len"), from the top of
    `subnet` down, none the gateway nor in `taken`. InvalidInput if the subnet is not one or
    fewer than `n` of its top TOP_CANDIDATES host addresses are free."""
    try:
        net = ipaddress.IPv4Network(subnet)
    except ValueError as exc:
        raise InvalidInput(f"probe subnet {subnet!r}: {exc}") from None
    busy = {gateway, *taken}
    out: list[str] = []
    first, last = int(net.network_address) + 1, int(net.broadcast_address) - 1
    for k in range(min(TOP_CANDIDATES, max(0, last - first + 1))):
        a = ipaddress.IPv4Address(last - k)
        if str(a) not in busy:
            out.append(f"{a}/{net.prefixlen}")
        if len(out) == n:
            return out
    raise InvalidInput(f"no {n} free addresses at the top of {subnet} for the probes "
                       f"({len(out)} free)")


def mac_of(address: str) -> str:
    """The probe's MAC for an address ("a.b.c.d" or "a.b.c.d/len"): locally administered
    unicast (02:...), the same for the same address."""
    ip = address.split("/", 1)[0]
    h = hashlib.sha256(f"netfate-probe:{ip}".encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in h[:5])


def rule_ids(rules: Mapping[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    return {node: [r["rule_id"] for r in rs] for node, rs in rules.items()}


def _rule(rid: str, match: dict[str, Any], output: list[str],
          priority: int = PRIORITY) -> dict[str, Any]:
    return {"rule_id": RULE_PREFIX + rid, "priority": priority, "match": match,
            "output": output}


def host_ports(p: SwitchPorts) -> list[str]:
    """A switch's ports toward hosts (the internet, servers): infrastructure ports that are
    neither its uplink nor a link to another node."""
    return sorted(x for x in p.infra if x != p.uplink and x not in p.links)


def parent(ports: Mapping[str, SwitchPorts], node: str) -> tuple[str, str] | None:
    """(the node above `node`, its port toward `node`), by the agents' reports; None at the
    top or when a report is missing."""
    p = ports.get(node)
    if p is None or p.uplink is None:
        return None
    up = p.links.get(p.uplink)
    q = ports.get(up) if up is not None else None
    if up is None or q is None:
        return None
    down = sorted(x for x, peer in q.links.items() if peer == node and x != q.uplink)
    return (up, down[0]) if down else None


def rules_for(iid: str, node: str, wan: str, mac: str, ports: Mapping[str, SwitchPorts],
              user: tuple[str, str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """The TS rules (as the API takes them) that carry probe `iid`'s own traffic, by node.
    `wan`: its wan port's name on `node`'s switch; `user`: (the user's MAC, their access
    port) when the probe is at their CPE. InvalidInput if `node`'s ports are unknown or it
    has no way out (no uplink and no host port)."""
    own = ports.get(node)
    if own is None:
        raise InvalidInput(f"{node} has not reported its switch's ports: no way to carry "
                           "its probe's traffic")
    out = [own.uplink] if own.uplink else host_ports(own)
    if not out:
        raise InvalidInput(f"{node} has no uplink and no host port: its probe could reach "
                           "nothing")
    tag = f"{iid}:"
    rules: dict[str, list[dict[str, Any]]] = {node: [
        _rule(tag + "out", {"in_port": wan, "eth_src": mac}, out),
        _rule(tag + "in", {"eth_dst": mac}, [wan]),
    ]}
    if user is not None:
        umac, access = user
        rules[node].append(_rule(tag + "user", {"in_port": wan, "eth_src": mac,
                                                 "eth_dst": umac}, [access], PRIORITY_EXACT))
    seen = {node}
    at = node
    while (up := parent(ports, at)) is not None and up[0] not in seen:
        above, toward = up
        seen.add(above)
        rules.setdefault(above, []).extend([
            _rule(f"{tag}down:{node}", {"eth_dst": mac}, [toward]),
            _rule(f"{tag}back:{node}", {"in_port": toward, "eth_dst": mac}, ["in_port"],
                  PRIORITY_EXACT),
        ])
        at = above
    return rules


def merge(*many: Mapping[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Several probes' rules, by node."""
    out: dict[str, list[dict[str, Any]]] = {}
    for m in many:
        for node, rs in m.items():
            out.setdefault(node, []).extend(rs)
    return out
