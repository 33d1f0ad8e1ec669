"""Each user's traffic through a switch, from the counters of their flows (for RADIUS
accounting, RFC 2866). Pure: flow stats in, counters out.

The source is the controller's own flows: every authenticated user has two port-security
flows in table 0 (cookie kind USER, the user's name hashed in), one tagging the packets that
come from them ("up") and one the packets that go to them ("down"). Their packet and byte
counters are the user's input and output at this switch, whatever chain or class the packets
take afterwards. The controller already speaks OpenFlow to every switch and knows which cookie
is whose, so no agent or OVS call is needed (and it works on any OpenFlow 1.3 switch).
"""

from __future__ import annotations

from typing import Any

from netfate.controller import ofmsg
from netfate.controller import pipeline as pl
from netfate.controller.model import SwitchState
from netfate.controller.pipeline import Kind, cookie


def user_counters(state: SwitchState, stats: list[Any]) -> dict[str, tuple[int, int, int, int]]:
    """Each authenticated user's [in_octets, in_packets, out_octets, out_packets] from the
    flow stats of their port-security flows: the one that tags the user's packets "up"
    (from them) and the one that tags them "down" (to them), both going on to ACTIVITY.
    An anchored user's flows (mid-migration, going on to STEER) are left out: the visited
    switch counts that traffic already."""
    out: dict[str, list[int]] = {}
    for u in state.users:
        if not u.authenticated:
            continue
        c = cookie(Kind.USER, u.name)
        up, down = pl.metadata(u.name, pl.UP), pl.metadata(u.name, pl.DOWN)
        row = [0, 0, 0, 0]
        for st in stats:
            if st.cookie != c or st.table_id != pl.INGRESS:
                continue
            f = ofmsg.from_stats(st)
            if f.goto_table != pl.ACTIVITY or f.write_metadata is None:
                continue
            if f.write_metadata[0] == up:
                row[0] += int(st.byte_count)
                row[1] += int(st.packet_count)
            elif f.write_metadata[0] == down:
                row[2] += int(st.byte_count)
                row[3] += int(st.packet_count)
        out[u.name] = row
    return {k: (v[0], v[1], v[2], v[3]) for k, v in out.items()}
