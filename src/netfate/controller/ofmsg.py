"""FlowMod <-> os-ken OpenFlow 1.3 messages, both ways, so sync compares like with like."""

from __future__ import annotations

from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from netfate.controller.flowmod import FlowMod, Meter

RESERVED = {
    "normal": ofp.OFPP_NORMAL,
    "flood": ofp.OFPP_FLOOD,
    "controller": ofp.OFPP_CONTROLLER,
    "in_port": ofp.OFPP_IN_PORT,
}
_RESERVED_NAMES = {v: k for k, v in RESERVED.items()}
ETH_8021Q = 0x8100
PACKET_IN_BYTES = 128  # enough for Ethernet + IPv4 + UDP headers of a DHCP packet


def instructions(f: FlowMod) -> list[Any]:
    """In OpenFlow 1.3's execution order: apply-actions, write-metadata, goto-table."""
    actions: list[Any] = []
    if f.pop_vlan:
        actions.append(parser.OFPActionPopVlan())
    if f.push_vlan:
        actions.append(parser.OFPActionPushVlan(ETH_8021Q))
    actions += [parser.OFPActionSetField(**{k: v}) for k, v in f.set_fields]
    for o in f.outputs:
        if isinstance(o, str):
            port = RESERVED[o]
            max_len = PACKET_IN_BYTES if o == "controller" else ofp.OFPCML_NO_BUFFER
        else:
            port, max_len = o, ofp.OFPCML_NO_BUFFER
        actions.append(parser.OFPActionOutput(port, max_len))
    inst: list[Any] = []
    if f.meter_id is not None:  # OpenFlow 1.3 5.1: meter first, then apply-actions
        inst.append(parser.OFPInstructionMeter(f.meter_id, ofp.OFPIT_METER))
    if actions:
        inst.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions))
    if f.write_metadata is not None:
        inst.append(parser.OFPInstructionWriteMetadata(*f.write_metadata))
    if f.goto_table is not None:
        inst.append(parser.OFPInstructionGotoTable(f.goto_table))
    return inst


def flow_mod(dp: Any, f: FlowMod, command: int = ofp.OFPFC_ADD) -> Any:
    strict_delete = command == ofp.OFPFC_DELETE_STRICT
    return parser.OFPFlowMod(
        dp, cookie=f.cookie,
        # a strict delete also checks the cookie: it removes that one flow, never a namesake
        cookie_mask=0xFFFFFFFFFFFFFFFF if strict_delete else 0,
        table_id=f.table_id, command=command,
        idle_timeout=f.idle_timeout, priority=f.priority,
        flags=ofp.OFPFF_SEND_FLOW_REM if f.send_flow_removed else 0,
        out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
        match=parser.OFPMatch(**f.match),
        instructions=[] if strict_delete else instructions(f),
    )


def from_stats(st: Any) -> FlowMod:
    """A flow as an OFPFlowStats (flow stats reply) reports it."""
    set_fields: list[tuple[str, Any]] = []
    outputs: list[int | str] = []
    meta: tuple[int, int] | None = None
    goto: int | None = None
    meter: int | None = None
    pop = push = False
    for inst in st.instructions:
        if isinstance(inst, parser.OFPInstructionActions):
            for a in inst.actions:
                if isinstance(a, parser.OFPActionPopVlan) and not (push or set_fields
                                                                  or outputs):
                    pop = True
                elif isinstance(a, parser.OFPActionPushVlan) and a.ethertype == ETH_8021Q \
                        and not (set_fields or outputs):
                    push = True
                elif isinstance(a, parser.OFPActionSetField):
                    set_fields.append((a.key, a.value))
                elif isinstance(a, parser.OFPActionOutput):
                    outputs.append(_RESERVED_NAMES.get(a.port, a.port))
                else:  # an action we never install: make sure the flow compares as wrong
                    outputs.append(f"unknown:{type(a).__name__}")
        elif isinstance(inst, parser.OFPInstructionWriteMetadata):
            meta = (inst.metadata, inst.metadata_mask)
        elif isinstance(inst, parser.OFPInstructionGotoTable):
            goto = inst.table_id
        elif isinstance(inst, parser.OFPInstructionMeter):
            meter = inst.meter_id
        else:
            outputs.append(f"unknown:{type(inst).__name__}")
    return FlowMod(
        cookie=st.cookie, priority=st.priority, match=dict(st.match.items()),
        outputs=tuple(outputs), idle_timeout=st.idle_timeout, table_id=st.table_id,
        set_fields=tuple(set_fields), write_metadata=meta, goto_table=goto,
        send_flow_removed=bool(st.flags & ofp.OFPFF_SEND_FLOW_REM), meter_id=meter,
        pop_vlan=pop, push_vlan=push,
    )


def meter_mods(dp: Any, m: Meter) -> list[Any]:
    """ADD then MODIFY of one meter: whichever of the two finds the meter in the wrong
    state (ADD: it exists already; MODIFY never, after the ADD) is refused harmlessly, so
    the meter ends as wanted whether or not the switch had it (a controller restart)."""
    flags = ofp.OFPMF_PKTPS | ofp.OFPMF_BURST
    bands = [parser.OFPMeterBandDrop(rate=m.rate_pps, burst_size=m.burst)]
    return [parser.OFPMeterMod(dp, command=cmd, flags=flags, meter_id=m.meter_id, bands=bands)
            for cmd in (ofp.OFPMC_ADD, ofp.OFPMC_MODIFY)]


def meter_delete(dp: Any, meter_id: int) -> Any:
    """OFPMC_DELETE of one meter (OpenFlow 1.3 7.3.4.4: the flows still naming it go too,
    so it is sent after their deletes)."""
    return parser.OFPMeterMod(dp, command=ofp.OFPMC_DELETE, flags=0, meter_id=meter_id,
                              bands=[])
