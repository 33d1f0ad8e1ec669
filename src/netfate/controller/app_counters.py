"""The controller app's part in RADIUS accounting, mixed into ControllerApp: every
``counters_interval`` seconds it reads the counters of the users' port-security flows (table
0, cookie kind USER) from each switch it masters, one flow-stats request filtered by cookie
(OpenFlow 1.3 §7.3.5.2), and publishes them per user (controller/counters.py) for the
orchestrator's Interim-Updates (RFC 2866 §5.3, RFC 2869 §2.1)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from os_ken.controller import event
from os_ken.controller.handler import set_ev_cls
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser
from pydantic import BaseModel

from netfate.bus import subjects
from netfate.bus.messages import UserCounters
from netfate.controller import pipeline as pl
from netfate.controller.counters import user_counters
from netfate.controller.model import SwitchState
from netfate.controller.pipeline import Kind

COUNTERS_INTERVAL = 5.0     # seconds between reads of the users' flow counters (accounting)


class EventReadCounters(event.EventBase):  # type: ignore[misc]
    """Time to read the users' flow counters of every switch (RADIUS accounting)."""


class CountersMixin:
    """Needs from the app: ``switches`` (dpid -> _Switch with ``dp``, ``counters_xid``,
    ``counters``), ``nodes``, ``desired``, ``is_master``, ``_publish``, ``send_event``,
    ``name``."""

    counters_interval: float = COUNTERS_INTERVAL  # 0: users' counters are not read

    switches: dict[int, Any]
    nodes: dict[int, str]
    desired: dict[str, SwitchState]
    name: str

    if TYPE_CHECKING:  # the app's own (at run time they must not shadow them in the MRO)
        def is_master(self, dpid: int) -> bool: ...

        def _publish(self, subject: str, msg: BaseModel) -> None: ...

        def send_event(self, name: str, ev: Any) -> None: ...

    def _counter_clock(self) -> None:
        # Own thread: only ticks; the reads themselves run on the app's event thread.
        while True:
            hub.sleep(self.counters_interval)
            self.send_event(self.name, EventReadCounters())

    @set_ev_cls(EventReadCounters)  # type: ignore[untyped-decorator]
    def _read_counters(self, ev: EventReadCounters) -> None:
        """Ask each switch with authenticated users for the counters of their port-security
        flows (table 0, cookie kind USER): one flow-stats request, filtered by cookie."""
        for dpid, sw in self.switches.items():
            state = self.desired.get(self.nodes.get(dpid, ""))
            if (state is None or not any(u.authenticated for u in state.users)
                    or not self.is_master(dpid)):  # its master reports the counters
                continue
            req = parser.OFPFlowStatsRequest(
                sw.dp, 0, pl.INGRESS, ofp.OFPP_ANY, ofp.OFPG_ANY,
                pl.COOKIE_MARK | (int(Kind.USER) << 48), 0xFFFF << 48, parser.OFPMatch())
            sw.dp.set_xid(req)
            sw.counters_xid, sw.counters = req.xid, []
            sw.dp.send_msg(req)

    def _counters_reply(self, sw: Any, msg: Any) -> None:
        sw.counters.extend(msg.body)
        if msg.flags & ofp.OFPMPF_REPLY_MORE:
            return
        sw.counters_xid = None
        node = self.nodes.get(sw.dp.id)
        state = self.desired.get(node or "")
        if node is None or state is None:
            return
        users = user_counters(state, sw.counters)
        sw.counters = []
        if users:
            self._publish(subjects.controller_counters(node),
                          UserCounters(node=node, ts=time.time(), users=users))
