"""The service-less testbed's own TS rules (no controller: a plain learning switch)."""

from __future__ import annotations

from netfate.controller.model import Match, TSRule
from netfate.drivers.ovs import OvsNetwork


def base_rules(net: OvsNetwork, lsi: str) -> list[TSRule]:
    """The service-less testbed's own TS rules on one LSI: a plain learning switch (NORMAL,
    rule `base:l2`), which nothing arriving from a tunnel may reach (`base:tunnel:<port>`,
    drop). NORMAL tags what a tunnel brings with the isolated VLAN and floods it to the
    infrastructure links, and from there into every other node's tunnels: a loop between
    nodes. Only explicit steering rules take traffic out of the overlay."""
    tunnels = sorted(p for p, ids in net.port_ids(lsi).items()
                     if ids.get("netfate-kind") == "tunnel")
    return [TSRule(rule_id="base:l2", priority=1, output=("normal",)),
            *(TSRule(rule_id=f"base:tunnel:{p}", priority=2, match=Match(in_port=p))
              for p in tunnels)]
