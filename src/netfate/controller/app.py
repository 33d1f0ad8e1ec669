"""The os-ken app (OpenFlow 1.3): keeps every connected switch equal to its desired state.

A switch is known by its datapath id, which each node's bridge is given from its node name
(datapath_id below). When it connects, and whenever its desired state or its ports change, the
app diffs its flows against the desired ones and sends the difference: adds, a barrier,
deletes, a barrier, then reports the generation as synced. Its flows are read from it (flow
stats) on connect and whenever the table the app made may have changed behind its back;
otherwise the diff is against that table (view.py), which saves a round trip per sync.
Until a desired state for a switch arrives, its flows are left as they are (fail_mode=secure
keeps them forwarding), so a restarted controller disturbs nothing before it knows better.

All handlers run on the app's own event thread, one at a time, desired-state updates included
(see bus.py for how they cross over from the NATS thread), so the app's state needs no lock.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import os_ken.base.app_manager as app_manager  # before os_ken.controller.*: circular import
from os_ken.controller import event, ofp_event
from os_ken.controller.handler import DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser
from pydantic import BaseModel

from netfate.bus import subjects
from netfate.bus.messages import ClientSeen, SwitchSynced, UserIdleReport
from netfate.controller import ofmsg
from netfate.controller.app_counters import CountersMixin
from netfate.controller.app_roles import RolesMixin
from netfate.controller.flowmod import FlowMod, Meter
from netfate.controller.flows import build
from netfate.controller.model import Client, SwitchState
from netfate.controller.pipeline import Kind, cookie, datapath_id, kind_of, ovs_datapath_id
from netfate.controller.sync import diff
from netfate.controller.view import FlowView
from netfate.counters import ENTRIES_SKIPPED, REGISTRY
from netfate.metrics import controller as metrics

__all__ = ["ControllerApp", "datapath_id", "ovs_datapath_id"]

log = logging.getLogger("netfate.controller")

STATS_TIMEOUT = 10.0        # a flow-stats request unanswered this long is asked again
SEEN_INTERVAL = 5.0         # at most one ClientSeen per (switch, MAC, port) in this time


class Publisher(Protocol):
    def publish(self, subject: str, msg: BaseModel) -> None: ...


class EventDesired(event.EventBase):  # type: ignore[misc]
    def __init__(self, state: SwitchState) -> None:
        super().__init__()
        self.state = state


@dataclass
class _Switch:
    dp: Any
    ports: dict[str, int] = field(default_factory=dict)
    stats_xid: int | None = None
    stats_at: float = 0.0
    stats: list[FlowMod] = field(default_factory=list)
    dirty: bool = False                 # asked to sync while a sync was under way
    sent: set[int] = field(default_factory=set)  # xids of the flow-mods of the last sync
    errors: list[str] = field(default_factory=list)
    barrier_xid: int | None = None
    report: SwitchSynced | None = None  # published when the last barrier is answered
    idle_users: dict[int, Client] = field(default_factory=dict)  # idle cookie -> user
    meters: set[Meter] = field(default_factory=set)  # sent on this connection
    counters_xid: int | None = None
    counters: list[Any] = field(default_factory=list)  # OFPFlowStats of the users' flows
    view: FlowView = field(default_factory=FlowView)  # its table as last read and changed


_F = TypeVar("_F", bound=Callable[..., None])


def _on(ev_cls: Any, dispatchers: Any = None) -> Callable[[_F], _F]:
    """os-ken's set_ev_cls, typed (os-ken has no type hints)."""
    deco: Callable[[_F], _F] = set_ev_cls(ev_cls, dispatchers)
    return deco


def _port_name(name: Any) -> str:
    return name.decode(errors="replace") if isinstance(name, bytes) else str(name)


class ControllerApp(RolesMixin, CountersMixin, app_manager.OSKenApp):  # type: ignore[misc]
    OFP_VERSIONS = [ofp.OFP_VERSION]
    # Set by run_controller before os-ken instantiates the app (it passes no arguments).
    nats_url: str | None = None
    purge_foreign: bool = False
    metrics_port: int = 0  # Prometheus /metrics on 127.0.0.1 (0: none)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.desired: dict[str, SwitchState] = {}
        self.nodes: dict[int, str] = {}         # datapath id -> node, from desired states
        self.switches: dict[int, _Switch] = {}  # connected switches, by datapath id
        self.bus: Publisher | None = None
        self._inbox: queue.Queue[SwitchState | None] = queue.Queue()
        self._seen: dict[tuple[str, str, str], float] = {}
        self._connected: tuple[str, ...] = ()   # a snapshot the NATS thread may read
        self._roles_init()

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> Any:
        thread = super().start()
        if self.metrics_port:
            metrics.start(self, self.metrics_port)
        self.threads.append(hub.spawn(self._mailbox))
        if self.counters_interval > 0:
            self.threads.append(hub.spawn(self._counter_clock))
        if self.nats_url:
            from netfate.controller.bus import BusBridge

            bridge = BusBridge(self.nats_url, self.submit_desired, lambda: list(self._connected),
                               on_alive=self.on_alive if self.controller_id else None)
            bridge.start(timeout=None)  # the bus may come up after the controller
            self.bus = bridge
        self._start_roles()
        return thread

    def stop(self) -> None:
        self._inbox.put(None)
        stop = getattr(self.bus, "stop", None)
        if stop is not None:
            stop()
        super().stop()

    def submit_desired(self, state: SwitchState) -> None:
        """From any thread (the NATS one): never blocks."""
        self._inbox.put(state)

    def _mailbox(self) -> None:
        # Own thread: send_event may block while the app's event queue is full, which must
        # never stall the NATS loop.
        while (state := self._inbox.get()) is not None:
            self.send_event(self.name, EventDesired(state))

    def _publish(self, subject: str, msg: BaseModel) -> None:
        metrics.published(msg)
        if self.bus is not None:
            self.bus.publish(subject, msg)

    # -- desired state ------------------------------------------------------------------------
    @_on(EventDesired)
    def _desired_handler(self, ev: EventDesired) -> None:
        self.apply_desired(ev.state)

    def apply_desired(self, state: SwitchState) -> None:
        # The latest wins: NATS keeps one publisher's order, and an orchestrator that
        # restarted may count generations from zero again.
        self.desired[state.node] = state
        self.nodes[datapath_id(state.node)] = state.node
        self._snapshot()
        sw = self.switches.get(datapath_id(state.node))
        if sw is not None:
            self._request_sync(sw)

    def _snapshot(self) -> None:
        self._connected = tuple(self.nodes[d] for d in self.switches if d in self.nodes)

    # -- switches -----------------------------------------------------------------------------
    @_on(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state_change(self, ev: Any) -> None:
        dp = ev.datapath
        if ev.state == MAIN_DISPATCHER:
            ports = {_port_name(p.name): p.port_no for p in (dp.ports or {}).values()}
            sw = _Switch(dp, ports=ports)
            self.switches[dp.id] = sw
            log.info("switch %016x connected (node %s)", dp.id, self.nodes.get(dp.id, "?"))
            self.roles.pop(dp.id, None)  # a new connection starts EQUAL
            self.assert_role(sw)
            self._request_sync(sw)
        elif ev.state == DEAD_DISPATCHER and dp.id is not None:
            cur = self.switches.get(dp.id)
            if cur is not None and cur.dp is dp:
                del self.switches[dp.id]
                self.roles.pop(dp.id, None)
                log.info("switch %016x disconnected", dp.id)
        self._snapshot()

    @_on(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def _port_status(self, ev: Any) -> None:
        msg = ev.msg
        sw = self.switches.get(msg.datapath.id)
        if sw is None:
            return
        before = dict(sw.ports)
        name = _port_name(msg.desc.name)
        if msg.reason in (ofp.OFPPR_ADD, ofp.OFPPR_MODIFY):
            sw.ports[name] = msg.desc.port_no
        elif msg.reason == ofp.OFPPR_DELETE:
            sw.ports.pop(name, None)
            sw.view.drop()  # (OVS keeps a gone port's flows; read rather than rely on it)
        if sw.ports != before:  # a port came or went: flows that name it change
            self._request_sync(sw)

    def _request_sync(self, sw: _Switch) -> None:
        if sw.dp.id not in self.nodes:
            return  # no desired state yet: leave the switch's flows as they are
        if not self.is_master(sw.dp.id):
            return  # a slave: its master programs it
        now = time.monotonic()
        if sw.stats_xid is not None and now - sw.stats_at < STATS_TIMEOUT:
            sw.dirty = True  # one sync at a time; this one runs again when it ends
            return
        node = self.nodes[sw.dp.id]
        metrics.sync_started(node)
        if (flows := sw.view.current(now)) is not None:
            self._converge(sw, flows)  # no read: the table is what the last diff made it
            return
        req = parser.OFPFlowStatsRequest(
            sw.dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, 0, 0, parser.OFPMatch()
        )
        sw.dp.set_xid(req)
        sw.stats_xid, sw.stats_at, sw.stats, sw.dirty = req.xid, now, [], False
        sw.view.read(now)
        sw.dp.send_msg(req)
        metrics.flow_read(node)

    @_on(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def _flow_stats(self, ev: Any) -> None:
        msg = ev.msg
        sw = self.switches.get(msg.datapath.id)
        if sw is not None and sw.counters_xid is not None and msg.xid == sw.counters_xid:
            self._counters_reply(sw, msg)
            return
        if sw is None or msg.xid != sw.stats_xid:
            return
        sw.stats.extend(ofmsg.from_stats(st) for st in msg.body)
        if msg.flags & ofp.OFPMPF_REPLY_MORE:
            return
        sw.stats_xid = None
        self._converge(sw, sw.stats)
        if sw.dirty:
            self._request_sync(sw)

    def _converge(self, sw: _Switch, installed: list[FlowMod]) -> None:
        node = self.nodes[sw.dp.id]
        state = self.desired[node]
        try:
            fs = build(state, sw.ports)
        except ValueError as exc:  # a state the model accepted but flows cannot express
            log.error("node %s: %s", node, exc)
            self._publish(subjects.controller_synced(node), SwitchSynced(
                node=node, generation=state.generation, added=0, deleted=0, unchanged=0,
                errors=[str(exc)], ts=time.time()))
            return
        plan = diff(fs.flows, installed, purge_foreign=self.purge_foreign)
        sw.view.expect(plan.desired, [] if self.purge_foreign else plan.foreign)
        for why in fs.skipped:
            log.warning("node %s: left out %s", node, why)
        if fs.skipped:
            REGISTRY.inc(ENTRIES_SKIPPED, len(fs.skipped), where="controller", node=node)
        # Meters before the flows that use them (the switch refuses a flow naming a meter it
        # lacks); sent once per connection and whenever their rate changes.
        new_meters = [m for m in fs.meters if m not in sw.meters]
        for m in new_meters:
            for mod in ofmsg.meter_mods(sw.dp, m):
                sw.dp.set_xid(mod)
                sw.dp.send_msg(mod)  # not in sw.sent: one of ADD/MODIFY may be refused
        wanted = {m.meter_id for m in fs.meters}
        # Meters of ports that are gone (or of a rate turned off) go after the flows using them.
        stale = sorted({m.meter_id for m in sw.meters} - wanted)
        sw.meters = {m for m in sw.meters if m.meter_id in wanted
                     and m.meter_id not in {x.meter_id for x in new_meters}}
        sw.meters |= set(new_meters)
        sw.idle_users = {cookie(Kind.IDLE, u.name): u for u in state.users}
        report = SwitchSynced(
            node=node, generation=state.generation, added=len(plan.add),
            deleted=len(plan.delete), unchanged=plan.unchanged, skipped=fs.skipped,
            ts=time.time(),
        )
        if plan.empty and sw.report is not None:
            # The table is what an earlier diff sent, not yet confirmed: its barrier confirms
            # this generation too. Reported now, the earlier report would follow this one
            # and read as the switch going back a generation.
            self._delete_meters(sw, stale)
            sw.report = report.model_copy(update={"added": sw.report.added,
                                                  "deleted": sw.report.deleted})
            return
        sw.errors, sw.sent = [], set()
        if plan.empty:
            self._delete_meters(sw, stale)
            self._publish(subjects.controller_synced(node), report)
            return
        # Adds, then a barrier so the switch has them all before any delete: a flow being
        # replaced by a different one is never missing in between.
        self._send(sw, [ofmsg.flow_mod(sw.dp, f, ofp.OFPFC_ADD) for f in plan.add])
        self._barrier(sw)
        self._send(sw, [ofmsg.flow_mod(sw.dp, f, ofp.OFPFC_DELETE_STRICT) for f in plan.delete])
        self._delete_meters(sw, stale)
        sw.report = report
        sw.barrier_xid = self._barrier(sw)
        metrics.flow_mods(node, "add", len(plan.add))
        metrics.flow_mods(node, "delete", len(plan.delete))
        log.info("node %s generation %s: +%d -%d =%d", node, state.generation,
                 len(plan.add), len(plan.delete), plan.unchanged)

    def _send(self, sw: _Switch, msgs: list[Any]) -> None:
        for m in msgs:
            sw.dp.set_xid(m)
            sw.sent.add(m.xid)
            sw.view.sent(m.xid)
            sw.dp.send_msg(m)

    @staticmethod
    def _delete_meters(sw: _Switch, meter_ids: list[int]) -> None:
        # Not in sw.sent, as meter adds: a meter the switch had already lost is no error.
        for i in meter_ids:
            mod = ofmsg.meter_delete(sw.dp, i)
            sw.dp.set_xid(mod)
            sw.dp.send_msg(mod)

    def _barrier(self, sw: _Switch) -> int:
        b = parser.OFPBarrierRequest(sw.dp)
        sw.dp.set_xid(b)
        sw.dp.send_msg(b)
        metrics.barrier(self.nodes.get(sw.dp.id, "?"))
        return int(b.xid)

    @_on(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def _barrier_reply(self, ev: Any) -> None:
        msg = ev.msg
        sw = self.switches.get(msg.datapath.id)
        if sw is None or msg.xid != sw.barrier_xid or sw.report is None:
            return
        sw.view.confirmed()
        report = sw.report.model_copy(update={"errors": list(sw.errors), "ts": time.time()})
        sw.barrier_xid, sw.report = None, None
        self._publish(subjects.controller_synced(report.node), report)

    @_on(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    def _error(self, ev: Any) -> None:
        msg = ev.msg
        if msg.type == ofp.OFPET_ROLE_REQUEST_FAILED:
            self.role_refused(msg.datapath.id, msg.code)
            return
        sw = self.switches.get(msg.datapath.id)
        if sw is not None:
            sw.view.refused(msg.xid)
        if sw is not None and msg.xid in sw.sent:
            text = f"switch refused a flow-mod: type {msg.type} code {msg.code}"
            sw.errors.append(text)
            metrics.flow_mod_error(self.nodes.get(sw.dp.id, "?"))
            log.warning("node %s: %s", self.nodes.get(sw.dp.id, "?"), text)

    # -- events from the data plane ---------------------------------------------------------
    @_on(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    def _flow_removed(self, ev: Any) -> None:
        msg = ev.msg
        sw = self.switches.get(msg.datapath.id)
        if sw is not None and msg.reason != ofp.OFPRR_DELETE:
            sw.view.drop()  # gone by the switch's own doing (our deletes are foreseen)
        if msg.reason != ofp.OFPRR_IDLE_TIMEOUT or kind_of(msg.cookie) != Kind.IDLE:
            return  # our own deletes, or someone else's flows
        if sw is None:
            return
        user = sw.idle_users.get(msg.cookie)
        node = self.nodes.get(sw.dp.id)
        if user is None or node is None:
            return
        log.info("node %s: user %s idle for %ss", node, user.name, msg.idle_timeout)
        self._publish(subjects.CONTROLLER_IDLE,
                      UserIdleReport(node=node, user=user.name, mac=user.mac, ts=time.time()))
        # Level-triggered: while the desired state still holds the user, their idle flow is
        # put back, so a report lost on the bus is repeated one idle period later.
        self._request_sync(sw)

    @_on(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev: Any) -> None:
        # Only the DHCP of a MAC with no flows yet comes here (flows._services).
        msg = ev.msg
        sw = self.switches.get(msg.datapath.id)
        node = self.nodes.get(msg.datapath.id)
        data = bytes(msg.data or b"")
        if sw is None or node is None or len(data) < 14:
            return
        names = {v: k for k, v in sw.ports.items()}
        port = names.get(msg.match.get("in_port"))
        if port is None or port not in self.desired[node].access_ports:
            return
        if data[6] & 1:  # a group source MAC: no station's (the switch drops these too)
            REGISTRY.inc(ENTRIES_SKIPPED, where="controller-packet-in", node=node)
            return
        mac = ":".join(f"{b:02x}" for b in data[6:12])
        now = time.monotonic()
        if now - self._seen.get((node, mac, port), -SEEN_INTERVAL) < SEEN_INTERVAL:
            return
        if len(self._seen) > 4096:  # a MAC-flooding client must not grow this forever
            self._seen = {k: t for k, t in self._seen.items() if now - t < SEEN_INTERVAL}
        self._seen[(node, mac, port)] = now
        self._publish(subjects.controller_client_seen(node),
                      ClientSeen(node=node, mac=mac, port=port, ts=time.time()))

