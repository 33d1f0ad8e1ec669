"""FlowMod: one OpenFlow 1.3 flow as the pipeline decides it, before any encoding. Pure.

`controller/flows.py` builds them, `controller/sync.py` diffs them, and `controller/ofmsg.py`
(os-ken's OpenFlow 1.3 parser) is the one encoder that turns them into messages, both for the
controller and for a node without one (`drivers/local_steering.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ETH_IPV4 = 0x0800
ETH_ARP = 0x0806


@dataclass(frozen=True)
class FlowMod:
    """An OpenFlow 1.3 flow, as OXM field names and output ports.

    Order of execution is OpenFlow 1.3's: pop_vlan, push_vlan, set_fields, then outputs
    (apply-actions, in that order), then write_metadata, then goto_table.
    """

    cookie: int
    priority: int
    match: dict[str, Any]
    outputs: tuple[int | str, ...]  # port numbers, or reserved names; empty means drop
    idle_timeout: int = 0
    table_id: int = 0
    set_fields: tuple[tuple[str, Any], ...] = ()  # OXM name and value, before any output
    write_metadata: tuple[int, int] | None = None  # (value, mask)
    goto_table: int | None = None
    send_flow_removed: bool = False  # OFPFF_SEND_FLOW_REM: the switch reports the removal
    meter_id: int | None = None  # OpenFlow 1.3 meter instruction, before the actions
    # A tenant's VLAN on a shared NF's port (NNF paper IV.E): the tag is pushed (then set by
    # a vlan_vid set_field) on the way into the NF, popped on the way out of it.
    pop_vlan: bool = False
    push_vlan: bool = False


@dataclass(frozen=True)
class Meter:
    """An OpenFlow 1.3 meter with one drop band, in packets per second (OFPMF_PKTPS|BURST)."""

    meter_id: int
    rate_pps: int
    burst: int
