"""TS rules (NNF paper, Table I) in the controller's pipeline: a rule's flow, and a user's
chain through bump-in-the-wire NFs written as TS rules. Pure.

`flows.build` renders `SwitchState.ts_rules` with `rule_flow`, so a TS rule is installed,
kept and removed by the same sync as every other flow, whoever holds the state: the
orchestrator (through the controller) or a node without a controller (drivers/local_steering).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from netfate.controller import pipeline as pl
from netfate.controller.flowmod import ETH_IPV4, FlowMod
from netfate.controller.model import RESERVED_OUTPUTS, TP_FIELDS, Match, TSRule

PortOf = Callable[[str], int]  # a port's OpenFlow number; raises flows.MissingPort if absent


def rule_cookie(rule_id: str) -> int:
    """The cookie of a TS rule's flow: the pipeline's mark, Kind.TS_RULE and the rule id."""
    return pl.cookie(pl.Kind.TS_RULE, rule_id)


def priority_of(rule: TSRule) -> int:
    """The OpenFlow priority of the rule's flow (table 0, the TS rule band)."""
    return pl.P_TS_RULE_BASE + rule.priority


def oxm_match(m: Match, port: PortOf) -> dict[str, Any]:
    """OXM fields with OpenFlow 1.3's prerequisites: IPv4 fields imply eth_type 0x0800."""
    out: dict[str, Any] = {}
    if m.in_port is not None:
        out["in_port"] = port(m.in_port)
    if m.eth_src:
        out["eth_src"] = m.eth_src
    if m.eth_dst:
        out["eth_dst"] = m.eth_dst
    needs_ip = any(x is not None for x in (m.ipv4_src, m.ipv4_dst, m.ip_proto, m.tp_src,
                                           m.tp_dst))
    eth_type = m.eth_type if m.eth_type is not None else (ETH_IPV4 if needs_ip else None)
    if eth_type is not None:
        out["eth_type"] = eth_type
    for key, value in (("ipv4_src", m.ipv4_src), ("ipv4_dst", m.ipv4_dst)):
        if value is not None:
            net = ipaddress.IPv4Network(value, strict=False)
            out[key] = (str(net.network_address) if net.prefixlen == 32
                        else (str(net.network_address), str(net.netmask)))
    if m.ip_proto is not None:
        out["ip_proto"] = m.ip_proto
    if m.ip_proto in TP_FIELDS:  # the model checks a port match has a protocol for it
        src, dst = TP_FIELDS[m.ip_proto]
        if m.tp_src is not None:
            out[src] = m.tp_src
        if m.tp_dst is not None:
            out[dst] = m.tp_dst
    return out


def rule_flow(rule: TSRule, port: PortOf) -> FlowMod:
    """The rule's one flow in table 0. Raises what `port` raises for a port not on the switch."""
    outputs: list[int | str] = []
    for name in rule.output:
        if name in RESERVED_OUTPUTS:
            outputs.append(name)
        elif name == rule.match.in_port:
            outputs.append("in_port")  # OpenFlow never sends back out of the ingress otherwise
        else:
            outputs.append(port(name))
    return FlowMod(cookie=rule_cookie(rule.rule_id), priority=priority_of(rule),
                   match=oxm_match(rule.match, port), outputs=tuple(outputs),
                   table_id=pl.INGRESS)


def chain_rules(
    tag: str,
    user_mac: str,
    access_port: str,
    uplink_port: str,
    hops: list[tuple[str, str]],
    priority: int = 100,
    own: list[tuple[str, str]] | None = None,
) -> list[TSRule]:
    """Steer one user's traffic through a chain of bump-in-the-wire NFs on an LSI.

    hops are the NFs' (lan-side, wan-side) switch ports, in chain order. Upstream: from the
    user's access port with their MAC, through each NF, out of the uplink. Downstream: to
    their MAC from the uplink, back through the chain in reverse, out of the access port.
    `own` lists (MAC, wan-side port) of NFs' own interfaces, reached from the uplink directly.
    Rule ids are `{tag}:up:{i}`, `{tag}:down:{i}` and `{tag}:own:{i}`.
    """
    mac = user_mac.lower()
    rules: list[TSRule] = []
    up_from: tuple[str, str | None] = (access_port, mac)
    for i, (lan, wan) in enumerate(hops):
        port, src = up_from
        rules.append(TSRule(rule_id=f"{tag}:up:{i}", priority=priority,
                            match=Match(in_port=port, eth_src=src), output=(lan,)))
        up_from = (wan, None)
    port, src = up_from
    rules.append(TSRule(rule_id=f"{tag}:up:{len(hops)}", priority=priority,
                        match=Match(in_port=port, eth_src=src), output=(uplink_port,)))
    down_from: tuple[str, str | None] = (uplink_port, mac)
    for i, (lan, wan) in reversed(list(enumerate(hops))):
        port, dst = down_from
        rules.append(TSRule(rule_id=f"{tag}:down:{i}", priority=priority,
                            match=Match(in_port=port, eth_dst=dst), output=(wan,)))
        down_from = (lan, None)
    port, dst = down_from
    rules.append(TSRule(rule_id=f"{tag}:down:-1", priority=priority,
                        match=Match(in_port=port, eth_dst=dst), output=(access_port,)))
    for i, (nf_mac, wan) in enumerate(own or []):
        rules.append(TSRule(rule_id=f"{tag}:own:{i}", priority=priority,
                            match=Match(in_port=uplink_port, eth_dst=nf_mac), output=(wan,)))
    return rules
