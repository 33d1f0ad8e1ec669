"""The orchestrator's run time: the database, NATS (embedded unless a URL is given), the
agents' messages, and the periodic reconciliation."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import logging
import math
import time
from typing import Any

import nats
from nats.aio.msg import Msg
from sqlalchemy.orm import Session

from netfate import api_auth, resolver
from netfate.bus import subjects
from netfate.bus.messages import (
    ClientSeen,
    Command,
    DatapathSettled,
    NodeEvent,
    Notification,
    Register,
    Reply,
    SwitchPorts,
    SwitchSynced,
    Telemetry,
    UserIdleReport,
)
from netfate.bus.server import EmbeddedNats
from netfate.bus.urls import servers
from netfate.counters import REGISTRATIONS_REFUSED, REGISTRY, LoopFailures
from netfate.db import Database
from netfate.db.advisory import AdvisoryLocks
from netfate.engine import NodeTelemetry, NodeUp
from netfate.errors import Conflict, NetfateError
from netfate.orchestrator import notify, recovery, state_lock
from netfate.orchestrator.access_subnet import AccessSubnet
from netfate.orchestrator.agents import AgentBus, Disconnects, refusal
from netfate.orchestrator.closed_loop import ClosedLoop
from netfate.orchestrator.coordinator import Coordinator
from netfate.orchestrator.hub import EventHub
from netfate.orchestrator.plan_locks import PlanLocks
from netfate.orchestrator.repair import Repairs
from netfate.orchestrator.replica import Replica
from netfate.orchestrator.service_db import (
    first_report,
    register,
    reported_ports,
    seed_catalogue,
    store_notification,
)
from netfate.orchestrator.settings import Settings
from netfate.orchestrator.singletons import Singletons
from netfate.orchestrator.switches import Switches
from netfate.orchestrator.switches_routed import RoutedSwitches
from netfate.orchestrator.telemetry import TELEMETRY_FLUSH_S, Readings, write_readings
from netfate.orchestrator.troubleshoot import Troubleshoots
from netfate.radius.client import RadiusClient
from netfate.radius.settings import RadiusSettings

log = logging.getLogger("netfate.orchestrator")

class Orchestrator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.hub = EventHub()
        self.db: Database | None = None
        self.nats: EmbeddedNats | None = None
        self.nc: Any = None
        self.coordinator: Coordinator | None = None
        self.switches: Switches | None = None
        self._radius: Any = None
        self.radius_settings: RadiusSettings | None = None
        # Accounting, Session-Timeout and the RFC 5176 server (orchestrator/aaa.py): on with
        # --radius; set aaa_settings before start() to run them next to a FreeRADIUS of
        # one's own (the RADIUS tests do).
        self.aaa: Any = None
        self.aaa_settings: RadiusSettings | None = None
        # The last fast re-authentications (handovers), newest last: for operators and the
        # handover benchmark.
        self.handovers: collections.deque[dict[str, Any]] = collections.deque(maxlen=200)
        self._tasks: list[asyncio.Task[None]] = []
        self.closed_loop: ClosedLoop | None = None
        self.troubleshoots: Troubleshoots | None = None  # made on first use (API)
        # The operator token (netfate.api_auth), known once started.
        self.api_token: str | None = None
        # Nodes whose agents reported their switch's ports since this start, and the user
        # repairs (level-triggered, netfate.orchestrator.repair) that read them.
        self.ports_reported: set[str] = set()
        self.repairs = Repairs(self)
        self._delta = float(getattr_policy_delta(settings.policy))
        # The engine and the coordinator's records resolve flavours with this rule; an unknown
        # name fails the start, naming the known ones.
        resolver.select(settings.resolver)
        # Telemetry: readings below the re-evaluation threshold are written in one transaction
        # every TELEMETRY_FLUSH_S instead of one per message; a change that triggers a plan is
        # written at once, after the plan.
        self.readings: Readings | None = None
        self._flush_failures = LoopFailures("telemetry-flush", log)
        # Reconciliation, checkpoints...: here, or at the leader among replicas.
        self.singletons = Singletons(self)
        self.replica: Replica | None = None
        self.held: state_lock.Held | None = None  # the state directory's lock, once started
        self._publish_failures = LoopFailures("switch-publish", log)

    # -- start/stop -----------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        self.held = state_lock.hold(s.state_dir)  # a second orchestrator is refused
        self.api_token = api_auth.ensure_token(s.state_dir, s.api_token)
        log.info("the API and the UI (%s/ui/) take the operator token in %s", s.public_url,
                 "NETFATE_API_TOKEN" if s.api_token else api_auth.token_path(s.state_dir))
        self.db = await asyncio.to_thread(Database.create, s.database_url)
        self.readings = Readings(self.db)
        if s.replica_id is None:  # among replicas the leader's sweep ends a dead one's
            await self.db.run(recovery.end_interrupted)  # none left PROCESSING
            await self.db.run(recovery.end_troubleshooting)  # no probe outlives its question
        if s.seed_catalogue:
            try:
                await self.db.run(seed_catalogue)
            except Conflict:  # another replica starting at the same time wrote a bundle
                await self.db.run(seed_catalogue)
        url = s.nats_url
        if url is None:
            self.nats = EmbeddedNats(s.state_dir / "nats", s.nats_port)
            await asyncio.to_thread(self.nats.start)
            url = self.nats.url
        disconnects = Disconnects()
        name = "orchestrator" if s.replica_id is None else f"orchestrator-{s.replica_id}"
        self.nc = await nats.connect(servers(url), name=name, max_reconnect_attempts=-1,
                                     reconnect_time_wait=0.5, disconnected_cb=disconnects.lost)
        self.switches = (Switches if s.replica_id is None else RoutedSwitches)(
                                 self.db, self.nc, s.user_idle_timeout,
                                 max_hosts_per_port=s.max_hosts_per_port,
                                 max_hosts_per_node=s.max_hosts_per_node, dhcp_pps=s.dhcp_pps)
        for name, ports in (await self.db.run(reported_ports)).items():
            self.switches.set_ports(name, ports)
        bus = AgentBus(self.nc, s.command_timeout, disconnects)
        self.coordinator = Coordinator(self.db, bus, self.hub, s.public_url, s.policy,
                                       switches=self.switches)
        if s.replica_id is not None:
            self.coordinator.locks = PlanLocks(await AdvisoryLocks.connect(
                s.database_url, f"netfate-orchestrator-{s.replica_id}"))
        self.coordinator.access_subnet = AccessSubnet.of(s.probe_subnet, s.probe_gateway)
        self.coordinator.admission.limit = s.max_events_in_flight
        self.coordinator.admission.target_s = s.admission_target_s
        if s.reaction_policy:
            self.closed_loop = ClosedLoop(self.db, self.coordinator, self.hub,
                                          s.reaction_policy)
        # Agents fetch bundles by URLs that carry their own key, not the operator token.
        self.coordinator.pushes.bundle_key = functools.partial(api_auth.bundle_key,
                                                               self.api_token)
        if s.radius:
            from netfate.radius import service as radius

            self.radius_settings = radius.settings_for(
                s.state_dir,
                s.radius_settings.model_copy(update={"reauth_lifetime": s.reauth_lifetime}))
            self._radius = await asyncio.to_thread(radius.start_freeradius, s.state_dir,
                                                   radius.api_url(s), self.radius_settings)
            self.aaa_settings = self.radius_settings
        elif self.aaa_settings is not None:
            self.radius_settings = self.aaa_settings
        for subject, cb in (
                (subjects.REGISTER, self.on_register), (subjects.ALL_TELEMETRY, self.on_telemetry),
                (subjects.ALL_EVENTS, self.on_event), (subjects.ALL_NOTIFY, self.on_notification),
                (subjects.ALL_CONTROLLER_SYNCED, self.on_synced),
                (subjects.ALL_DATAPATH_SETTLED, self.on_settled),
                (subjects.CONTROLLER_HELLO, self.on_controller_hello),
                (subjects.CONTROLLER_IDLE, self.on_user_idle),
                (subjects.ALL_CONTROLLER_CLIENT_SEEN, self.on_client_seen)):
            await self.nc.subscribe(subject, cb=cb)
        # In the background: the API and the agents' messages are served meanwhile.
        self._tasks.append(asyncio.create_task(self._publish_all()))
        if self.aaa_settings is not None:
            from netfate.orchestrator import aaa

            self.aaa = await aaa.start(self, self.aaa_settings)
        if s.replica_id is None:
            self.singletons.start()
        else:  # the leader runs them
            assert self.coordinator.locks.shared is not None
            self.replica = Replica(s.replica_id, self.nc, self.coordinator.locks.shared,
                                   s.public_url, on_leadership=self.singletons.on_leadership)
            self.coordinator.executor.runner = self.replica.incarnation
            await self.replica.start()
        self._tasks.append(asyncio.create_task(notify.dispatch(
            self.hub, self.db, allowed=s.callback_networks)))
        self._tasks.append(asyncio.create_task(self.telemetry_flush_loop()))
        log.info("orchestrator up: db %s, nats %s", s.database_url, url)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        self.singletons.stop()
        if self.replica is not None:
            await self.replica.stop()
        if self.coordinator is not None:
            await self.coordinator.drain(5)
        try:
            await self.flush_telemetry()
            if self.coordinator is not None:
                await self.coordinator.record_observed()
        except Exception as exc:  # stopping anyway; the next start reads fresh telemetry
            log.warning("recording the last telemetry at stop failed: %s: %s",
                        type(exc).__name__, exc)
        if self.aaa is not None:
            await self.aaa.stop()
        if self._radius is not None:
            await asyncio.to_thread(self._radius.stop)
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.drain()
        if self.nats is not None:
            await asyncio.to_thread(self.nats.stop)
        if self.db is not None:
            await asyncio.to_thread(self.db.dispose)
        if self.held is not None:  # this orchestrator's own lock, not another's
            self.held.release()

    def radius_client(self) -> RadiusClient:
        """A RADIUS client of the stack's FreeRADIUS (fast re-authentication, as a NAS)."""
        assert self.radius_settings is not None
        r = self.radius_settings
        return RadiusClient(r.host, r.port, r.secret, timeout=1.0)

    @property
    def nats_url(self) -> str | None:
        return self.nats.url if self.nats else self.settings.nats_url

    # -- agents' messages ------------------------------------------------------------------
    def owns(self, node: str) -> bool:
        """Whether this process handles the node's messages: always, unless it is one of
        several replicas (then the node's partition owner does, orchestrator/replica.py)."""
        return self.replica is None or self.replica.owns(node)

    async def on_register(self, msg: Msg) -> None:
        assert self.db is not None and self.coordinator is not None
        reply: Command | Reply
        try:
            reg = Register.model_validate_json(msg.data)
            if not self.owns(reg.node):  # every replica keeps every switch's ports
                with contextlib.suppress(ValueError):
                    if (p := reg.infrastructure.get("switch_ports")) is not None \
                            and self.switches is not None:
                        self.switches.set_ports(reg.node, SwitchPorts.model_validate(p))
                return
            assert self.readings is not None
            # Readings not yet written are older than the registration's: dropped first, so
            # no batch writes them over it.
            self.readings.registered(reg.node, reg.resources.model_dump())
            was_online = await self.db.run(register, reg)
            ports = reg.infrastructure.get("switch_ports")
            if ports is not None and self.switches is not None:
                self.switches.set_ports(reg.node, SwitchPorts.model_validate(ports))
                self.ports_reported.add(reg.node)
                self.coordinator.spawn(self._publish_switch(reg.node))
            reply = await self.coordinator.apply_command(reg.node)
            self.hub.publish("node", {"name": reg.node, "online": True, "registered": True})
            if not was_online:
                self.coordinator.spawn(self.coordinator.handle(NodeUp(node=reg.node)))
        except Exception as exc:
            # Answered as a refusal, which the agent logs with this reason and retries
            # after a backoff (a ping here used to read as "registered").
            node = _node_of(msg.data)
            reason = f"{type(exc).__name__}: {exc}"
            REGISTRY.inc(REGISTRATIONS_REFUSED, side="orchestrator")
            log.warning("refused the registration of node %s: %s", node, reason)
            reply = refusal(f"the orchestrator cannot register node {node}: {reason}")
        if msg.reply:
            await msg.respond(reply.model_dump_json().encode())

    async def on_telemetry(self, msg: Msg) -> None:
        assert self.db is not None and self.coordinator is not None
        assert self.readings is not None
        # netfate.agent.<node>.telemetry: another replica's node is skipped unparsed.
        if self.replica is not None and not self.owns(msg.subject.split(".")[2]):
            return
        try:
            t = Telemetry.model_validate_json(msg.data)
        except ValueError:
            return
        if not self.owns(t.node):
            return
        r = t.resources.model_dump()
        prev = self.readings.latest.get(t.node)
        if prev is None:  # first report since the orchestrator started
            prev = await self.db.run(first_report, t.node)
            if prev is None:
                return  # not registered yet: its registration carries everything
        self.readings.latest[t.node] = r
        now = time.time()
        if self._changed(prev, t.resources.cpu_util, t.resources.mem_free_mb):
            # The engine compares the new readings with the recorded ones: bring the record
            # up to date with the previous report, plan, then record the new one.
            await self.readings.flush([t.node])

            def record(s: Session) -> None:
                write_readings(s, {t.node: (r, now)})

            await self.coordinator.handle(NodeTelemetry(
                node=t.node, cpu_util=t.resources.cpu_util, mem_free_mb=t.resources.mem_free_mb,
                nf_count=t.resources.nf_count), record=record)
        else:
            self.readings.later(t.node, r, now)
        self.coordinator.observe(t.node, t.nfs)

    async def flush_telemetry(self, nodes: list[str] | None = None) -> None:
        """Write the readings not yet in the database (of `nodes`, or all)."""
        if self.readings is not None:
            await self.readings.flush(nodes)

    async def telemetry_flush_loop(self) -> None:
        assert self.coordinator is not None
        while True:
            await asyncio.sleep(TELEMETRY_FLUSH_S)
            try:
                await self.flush_telemetry()
                await self.coordinator.record_observed()
                self._flush_failures.ok()
            except Exception as exc:
                self._flush_failures.failed("recording telemetry", exc)

    def _changed(self, prev: dict[str, Any], cpu: float, mem_free: int) -> bool:
        """Cheap pre-check of the engine's re-evaluation threshold, to spare a snapshot per
        telemetry message."""
        total = float(prev.get("mem_total_mb") or 0) or 1.0
        d_cpu = abs(cpu - float(prev.get("cpu_util", cpu)))
        d_mem = abs(mem_free - float(prev.get("mem_free_mb", mem_free))) / total
        return max(d_cpu, d_mem) >= self._delta

    async def on_event(self, msg: Msg) -> None:
        try:
            ev = NodeEvent.model_validate_json(msg.data)
        except ValueError:
            return
        self.hub.publish("node_event", ev.model_dump(mode="json"))
        if ev.kind == "switch" and self.switches is not None:
            with contextlib.suppress(ValueError):
                self.switches.set_ports(ev.node, SwitchPorts.model_validate(ev.data))
                self.ports_reported.add(ev.node)
                if self.owns(ev.node):
                    await self._publish_switch(ev.node)
        elif ev.kind == "client.associated" and self.owns(ev.node):
            await self.on_client_associated(ev)

    async def on_client_associated(self, ev: NodeEvent) -> None:
        """A station came up on one of the node's access ports (hostapd's AP-STA-CONNECTED).
        Fast re-authentication is netfate.orchestrator.reauth's job."""
        from netfate.orchestrator import reauth

        assert self.coordinator is not None and self.db is not None
        await reauth.on_associated(self, ev)

    async def _publish_switch(self, node: str) -> None:
        if self.switches is None:
            return
        try:
            await self.switches.publish_many(self.switches.affected(node))
            self._publish_failures.ok()
        except Exception as exc:
            self._publish_failures.failed(
                f"publishing the switch states after a change at node {node}", exc)

    async def _publish_all(self) -> None:
        try:
            if self.switches is not None:
                await self.switches.publish_all()
            self._publish_failures.ok()
        except Exception as exc:
            self._publish_failures.failed("publishing every switch state", exc)

    # -- the SDN controller's messages ---------------------------------------------------------
    async def on_synced(self, msg: Msg) -> None:
        with contextlib.suppress(ValueError):
            report = SwitchSynced.model_validate_json(msg.data)
            if self.switches is not None:
                self.switches.synced(report)
            self.hub.publish("switch_synced", report.model_dump(mode="json"))

    async def on_settled(self, msg: Msg) -> None:
        with contextlib.suppress(ValueError):
            if self.switches is not None:
                self.switches.datapaths.report(DatapathSettled.model_validate_json(msg.data))

    async def on_controller_hello(self, msg: Msg) -> None:
        if self.switches is not None:
            self.switches.controller_seen = True
            await self._publish_all()

    async def on_user_idle(self, msg: Msg) -> None:
        """No packets from or to the user for the idle period: the engine releases them."""
        from netfate.orchestrator import sessions

        with contextlib.suppress(ValueError):
            rep = UserIdleReport.model_validate_json(msg.data)
            if self.owns(rep.node):
                await sessions.idle_reported(self, rep)

    async def on_client_seen(self, msg: Msg) -> None:
        with contextlib.suppress(ValueError):
            seen = ClientSeen.model_validate_json(msg.data)
            if self.switches is not None and self.switches.client_seen(
                    seen.node, seen.mac, seen.port) and self.owns(seen.node):
                await self._publish_switch(seen.node)

    async def on_notification(self, msg: Msg) -> None:
        assert self.db is not None
        try:
            n = Notification.model_validate_json(msg.data)
        except ValueError:
            return
        if not self.owns(n.node):
            return
        if not math.isfinite(n.ts):  # NaN would reach the event stream as invalid JSON
            n = n.model_copy(update={"ts": time.time()})
        try:
            nid = await self.db.run(store_notification, n)
        except NetfateError as exc:  # never an exception out of the bus callback
            log.warning("notification %s from %s not stored: %s", n.type, n.node, exc)
            return
        if nid is not None:
            self.hub.publish("notification", {"id": nid, **n.model_dump(mode="json")})
        if self.closed_loop is not None and self.coordinator is not None:
            self.coordinator.spawn(self.closed_loop.on_notification(n))


def _node_of(data: bytes) -> str:
    """The node a registration names, for the log, even when it does not validate."""
    try:
        doc = json.loads(data)
    except ValueError:
        return "?"
    return str(doc.get("node", "?")) if isinstance(doc, dict) else "?"


def getattr_policy_delta(name: str) -> float:  # UnknownName for a bad name
    from netfate.engine import get_policy
    return float(getattr(get_policy(name), "reevaluate_delta", 0.15))


def now() -> float:
    return time.time()
