"""Traffic steering rules (the NNF paper's createTSRule) and their OpenFlow 1.3 form. Pure.

A rule matches on ports and headers and outputs to ports, by name. `to_flowmod` turns it into
an OpenFlow flow given the switch's port numbers; `FlowTable` (for tests) follows a packet
through rules, as Faucet's fake flow table does.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

_MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
ETH_IPV4 = 0x0800
ETH_ARP = 0x0806


class Match(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    in_port: str | None = None
    eth_src: str | None = None
    eth_dst: str | None = None
    eth_type: int | None = Field(default=None, ge=0, le=0xFFFF)
    ipv4_src: str | None = None
    ipv4_dst: str | None = None
    ip_proto: int | None = Field(default=None, ge=0, le=255)
    tp_src: int | None = Field(default=None, ge=0, le=65535)
    tp_dst: int | None = Field(default=None, ge=0, le=65535)

    @field_validator("eth_src", "eth_dst")
    @classmethod
    def _mac(cls, v: str | None) -> str | None:
        if v is not None and not _MAC.match(v.lower()):
            raise ValueError(f"{v!r} is not a MAC address like 02:00:00:00:00:01")
        return v.lower() if v else v

    @field_validator("ipv4_src", "ipv4_dst")
    @classmethod
    def _ip(cls, v: str | None) -> str | None:
        if v is not None:
            ipaddress.IPv4Network(v, strict=False)
        return v


class TSRule(BaseModel):
    """One steering rule on an LSI: match, priority, and the ports to send to (empty = drop)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule_id: str = Field(min_length=1, max_length=128)
    priority: int = Field(default=100, ge=1, le=65535)
    match: Match = Field(default_factory=Match)
    output: tuple[str, ...] = ()
    idle_timeout: int = Field(default=0, ge=0, le=65535)

    def cookie(self) -> int:
        return rule_cookie(self.rule_id)


def rule_cookie(rule_id: str) -> int:
    """A 63-bit cookie derived from the rule id, so a rule's flows can be found and removed."""
    return int(hashlib.sha1(rule_id.encode()).hexdigest()[:15], 16)


def _needs_ip(m: Match) -> bool:
    return any(x is not None for x in (m.ipv4_src, m.ipv4_dst, m.ip_proto, m.tp_src, m.tp_dst))


# Outputs that are OpenFlow reserved ports rather than switch ports.
RESERVED_OUTPUTS = ("normal", "flood", "controller", "in_port")
_TP_FIELDS = {6: ("tcp_src", "tcp_dst"), 17: ("udp_src", "udp_dst"), 132: ("sctp_src", "sctp_dst")}


@dataclass(frozen=True)
class FlowMod:
    """An OpenFlow 1.3 flow, as OXM field names and output ports: what a driver encodes."""

    cookie: int
    priority: int
    match: dict[str, Any]
    outputs: tuple[int | str, ...]  # port numbers, or reserved names; empty means drop
    idle_timeout: int = 0
    table_id: int = 0
    # Multi-table pipelines (netfate.controller). The defaults keep a one-table flow as it was.
    # Order of execution is OpenFlow 1.3's: set_fields, then outputs (apply-actions), then
    # write_metadata, then goto_table.
    set_fields: tuple[tuple[str, Any], ...] = ()  # OXM name and value, before any output
    write_metadata: tuple[int, int] | None = None  # (value, mask)
    goto_table: int | None = None
    send_flow_removed: bool = False  # OFPFF_SEND_FLOW_REM: the switch reports the removal


def oxm_match(m: Match, ofports: Mapping[str, int]) -> dict[str, Any]:
    """OXM fields with OpenFlow 1.3 prerequisites: IP fields imply eth_type, ports need a proto."""
    out: dict[str, Any] = {}
    if m.in_port is not None:
        out["in_port"] = _port(m.in_port, ofports)
    if m.eth_src:
        out["eth_src"] = m.eth_src
    if m.eth_dst:
        out["eth_dst"] = m.eth_dst
    eth_type = m.eth_type
    if eth_type is None and _needs_ip(m):
        eth_type = ETH_IPV4
    if eth_type is not None:
        out["eth_type"] = eth_type
    for key, value in (("ipv4_src", m.ipv4_src), ("ipv4_dst", m.ipv4_dst)):
        if value is not None:
            net = ipaddress.IPv4Network(value, strict=False)
            out[key] = (
                str(net.network_address) if net.prefixlen == 32
                else (str(net.network_address), str(net.netmask))
            )
    if m.ip_proto is not None:
        out["ip_proto"] = m.ip_proto
    if m.tp_src is not None or m.tp_dst is not None:
        if m.ip_proto not in _TP_FIELDS:
            raise ValueError("a TCP/UDP/SCTP port match needs ip_proto 6, 17 or 132")
        src, dst = _TP_FIELDS[m.ip_proto]
        if m.tp_src is not None:
            out[src] = m.tp_src
        if m.tp_dst is not None:
            out[dst] = m.tp_dst
    return out


def _port(name: str, ofports: Mapping[str, int]) -> int:
    if name not in ofports:
        raise KeyError(f"port {name!r} is not on the switch")
    return ofports[name]


def to_flowmod(rule: TSRule, ofports: Mapping[str, int]) -> FlowMod:
    """The rule as an OpenFlow 1.3 flow (table 0) for a switch with these port numbers."""
    outputs: list[int | str] = []
    for name in rule.output:
        if name in RESERVED_OUTPUTS:
            outputs.append(name)
        elif name == rule.match.in_port:
            outputs.append("in_port")  # OpenFlow never sends back out of the ingress otherwise
        else:
            outputs.append(_port(name, ofports))
    return FlowMod(
        cookie=rule.cookie(),
        priority=rule.priority,
        match=oxm_match(rule.match, ofports),
        outputs=tuple(outputs),
        idle_timeout=rule.idle_timeout,
    )


class Packet(BaseModel):
    """A packet's headers, for following it through a FlowTable in tests."""

    in_port: str
    eth_src: str = "02:00:00:00:00:01"
    eth_dst: str = "02:00:00:00:00:02"
    eth_type: int = ETH_IPV4
    ipv4_src: str | None = None
    ipv4_dst: str | None = None
    ip_proto: int | None = None
    tp_src: int | None = None
    tp_dst: int | None = None


def matches(m: Match, p: Packet) -> bool:
    if m.in_port is not None and m.in_port != p.in_port:
        return False
    if m.eth_src and m.eth_src != p.eth_src.lower():
        return False
    if m.eth_dst and m.eth_dst != p.eth_dst.lower():
        return False
    eth_type = m.eth_type if m.eth_type is not None else (ETH_IPV4 if _needs_ip(m) else None)
    if eth_type is not None and eth_type != p.eth_type:
        return False
    for net, addr in ((m.ipv4_src, p.ipv4_src), (m.ipv4_dst, p.ipv4_dst)):
        if net is not None and (
            addr is None or ipaddress.IPv4Address(addr) not in ipaddress.IPv4Network(net, False)
        ):
            return False
    for want, got in ((m.ip_proto, p.ip_proto), (m.tp_src, p.tp_src), (m.tp_dst, p.tp_dst)):
        if want is not None and want != got:
            return False
    return True


class FlowTable:
    """A fake single-table switch: highest-priority match wins; no match means drop."""

    def __init__(self) -> None:
        self.rules: dict[str, TSRule] = {}

    def apply(self, rule: TSRule) -> None:
        self.rules[rule.rule_id] = rule

    def remove(self, rule_id: str) -> None:
        self.rules.pop(rule_id, None)

    def lookup(self, p: Packet) -> TSRule | None:
        best: TSRule | None = None
        for r in self.rules.values():
            if matches(r.match, p) and (best is None or r.priority > best.priority):
                best = r
        return best

    def forward(self, p: Packet) -> tuple[str, ...]:
        r = self.lookup(p)
        if r is None:
            return ()
        return tuple(p.in_port if o == r.match.in_port else o for o in r.output)


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
    """
    mac = user_mac.lower()
    rules: list[TSRule] = []
    up_from: tuple[str, str | None] = (access_port, mac)
    for i, (lan, wan) in enumerate(hops):
        port, src = up_from
        rules.append(TSRule(
            rule_id=f"{tag}:up:{i}", priority=priority,
            match=Match(in_port=port, eth_src=src), output=(lan,),
        ))
        up_from = (wan, None)
    port, src = up_from
    rules.append(TSRule(
        rule_id=f"{tag}:up:{len(hops)}", priority=priority,
        match=Match(in_port=port, eth_src=src), output=(uplink_port,),
    ))
    down_from: tuple[str, str | None] = (uplink_port, mac)
    for i, (lan, wan) in reversed(list(enumerate(hops))):
        port, dst = down_from
        rules.append(TSRule(
            rule_id=f"{tag}:down:{i}", priority=priority,
            match=Match(in_port=port, eth_dst=dst), output=(wan,),
        ))
        down_from = (lan, None)
    port, dst = down_from
    rules.append(TSRule(
        rule_id=f"{tag}:down:-1", priority=priority,
        match=Match(in_port=port, eth_dst=dst), output=(access_port,),
    ))
    for i, (nf_mac, wan) in enumerate(own or []):
        rules.append(TSRule(
            rule_id=f"{tag}:own:{i}", priority=priority,
            match=Match(in_port=uplink_port, eth_dst=nf_mac), output=(wan,),
        ))
    return rules
