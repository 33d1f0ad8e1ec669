"""A fake multi-table OpenFlow 1.3 switch for tests: it applies FlowMods and follows a packet
through the tables (write-metadata, goto, set-field, output), so tests check what happens to
traffic rather than the text of flows (as Faucet's fake flow table does).

Two flows of the same priority that both match a packet are an error here: on a real switch
the winner is undefined, so the pipeline must never rely on it.
"""

from __future__ import annotations

import struct
import types
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from netfate.controller import ofmsg
from netfate.controller.flowmod import ETH_ARP, ETH_IPV4, FlowMod
from netfate.controller.oxm import to_int

Key = tuple[int, int, tuple[tuple[str, Any], ...]]
VLAN_PRESENT = 0x1000  # OFPVID_PRESENT: a packet's vlan_vid when it has a tag
Output = tuple[str, dict[str, Any]]  # port name (or "normal", "controller"), packet as sent


class Ambiguous(AssertionError):
    pass


def key(f: FlowMod) -> Key:
    return (f.table_id, f.priority, tuple(sorted(f.match.items())))


def field_matches(name: str, want: Any, got: Any) -> bool:
    if got is None:
        return False  # an absent field (say tcp_dst on ARP) never matches
    if isinstance(want, tuple):
        value, mask = want
        m = to_int(name, mask)
        return to_int(name, got) & m == to_int(name, value) & m
    return to_int(name, got) == to_int(name, want)


@dataclass
class FakeSwitch:
    ofports: Mapping[str, int]
    flows: dict[Key, FlowMod] = field(default_factory=dict)
    hits: Counter[Key] = field(default_factory=Counter)

    def apply(self, flows: Iterable[FlowMod]) -> None:
        for f in flows:
            self.flows[key(f)] = f  # OFPFC_ADD: same table, priority and match replaces

    def delete(self, flows: Iterable[FlowMod]) -> None:
        for f in flows:
            self.flows.pop(key(f), None)

    def flow_stats(self) -> list[Any]:
        """The flows as a switch reports them: os-ken OFPFlowStats parsed from wire bytes."""
        return [as_reported(f) for f in self.flows.values()]

    def table(self, table_id: int) -> list[FlowMod]:
        return [f for f in self.flows.values() if f.table_id == table_id]

    def _name(self, port: int | str, in_port: int) -> str:
        if port == "in_port":
            port = in_port
        if isinstance(port, str):
            return port
        names = {v: k for k, v in self.ofports.items()}
        return names.get(port, str(port))

    def _lookup(self, table_id: int, pkt: dict[str, Any]) -> FlowMod | None:
        hits = [
            f for f in self.table(table_id)
            if all(field_matches(k, v, pkt.get(k)) for k, v in f.match.items())
        ]
        if not hits:
            return None
        top = max(f.priority for f in hits)
        best = [f for f in hits if f.priority == top]
        if len(best) > 1:
            raise Ambiguous(f"table {table_id}: {len(best)} flows of priority {top} match "
                            f"{pkt}: {[f.match for f in best]}")
        return best[0]

    def process(self, pkt: dict[str, Any]) -> list[Output]:
        """Send one packet in (pkt['in_port'] by name); return where copies leave, and as what."""
        p = dict(pkt)
        in_port = self.ofports[p["in_port"]]
        p["in_port"] = in_port
        p["metadata"] = 0
        out: list[Output] = []
        table: int | None = 0
        while table is not None:
            f = self._lookup(table, p)
            if f is None:
                break  # OpenFlow 1.3 table-miss with no flow: drop
            self.hits[key(f)] += 1
            if f.pop_vlan:
                p.pop("vlan_vid", None)
            if f.push_vlan:
                p["vlan_vid"] = VLAN_PRESENT  # VID 0 until a set_field gives it one
            for name, value in f.set_fields:
                p[name] = value
            for o in f.outputs:
                sent = {k: v for k, v in p.items() if k not in ("in_port", "metadata")}
                out.append((self._name(o, in_port), sent))
            if f.write_metadata is not None:
                value, mask = f.write_metadata
                p["metadata"] = (p["metadata"] & ~mask) | (value & mask)
            if f.goto_table is not None and f.goto_table <= table:
                raise AssertionError(f"goto_table {f.goto_table} from table {table}")
            table = f.goto_table
        return out

    def trace(self, pkt: dict[str, Any], nfs: Mapping[str, str], limit: int = 16) -> Trace:
        """Follow a packet across bump-in-the-wire NFs (port -> its NF's other port)."""
        t = Trace()
        todo = [pkt]
        while todo:
            if len(t.path) > limit:
                raise AssertionError(f"loop: {t.path}")
            cur = todo.pop(0)
            for port, sent in self.process(cur):
                t.path.append(port)
                if port in nfs:
                    todo.append({**sent, "in_port": nfs[port]})
                else:
                    t.out.append((port, sent))
        return t


@dataclass
class Trace:
    path: list[str] = field(default_factory=list)  # every port a copy left by, in order
    out: list[Output] = field(default_factory=list)  # where it finally left (not into an NF)

    @property
    def exits(self) -> list[str]:
        return [p for p, _ in self.out]


def ip_packet(in_port: str, eth_src: str, eth_dst: str, src: str, dst: str,
              proto: int = 6, sport: int = 40000, dport: int = 80) -> dict[str, Any]:
    pkt: dict[str, Any] = {"in_port": in_port, "eth_src": eth_src, "eth_dst": eth_dst,
                           "eth_type": ETH_IPV4, "ipv4_src": src, "ipv4_dst": dst,
                           "ip_proto": proto}
    if proto in (6, 17):
        name = "tcp" if proto == 6 else "udp"
        pkt[f"{name}_src"], pkt[f"{name}_dst"] = sport, dport
    return pkt


def arp_packet(in_port: str, eth_src: str, spa: str, tpa: str, op: int = 1,
               eth_dst: str = "ff:ff:ff:ff:ff:ff", sha: str | None = None) -> dict[str, Any]:
    return {"in_port": in_port, "eth_src": eth_src, "eth_dst": eth_dst, "eth_type": ETH_ARP,
            "arp_op": op, "arp_sha": sha or eth_src, "arp_spa": spa, "arp_tpa": tpa}


_DP = types.SimpleNamespace(ofproto=ofp, ofproto_parser=parser, id=0)
_FLOW_MOD_HEAD = 48  # ofp_header + the fixed part of ofp_flow_mod, before the match


def stats_bytes(f: FlowMod, packets: int = 0) -> bytes:
    """One ofp_flow_stats entry, as a switch puts it in a flow-stats reply."""
    mod = ofmsg.flow_mod(_DP, f)
    mod.serialize()
    body = bytes(mod.buf[_FLOW_MOD_HEAD:])  # match (padded) + instructions
    flags = ofp.OFPFF_SEND_FLOW_REM if f.send_flow_removed else 0
    head = struct.pack(ofp.OFP_FLOW_STATS_0_PACK_STR, ofp.OFP_FLOW_STATS_0_SIZE + len(body),
                       f.table_id, 1, 0, f.priority, f.idle_timeout, 0, flags, f.cookie,
                       packets, packets * 100)
    return head + body


def as_reported(f: FlowMod, packets: int = 0) -> Any:
    """One flow in a flow-stats reply, parsed from the bytes a switch would send for it."""
    return parser.OFPFlowStats.parser(stats_bytes(f, packets), 0)
