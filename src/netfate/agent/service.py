"""The agent process: dials out to NATS, registers its node, converges the node to the desired
state the orchestrator holds, reports telemetry and forwards NF notifications.

Driver calls block, so they run in a worker thread, one at a time (the node is one resource).
After a reconnect the agent registers again, and the reply carries the full desired state:
both sides re-sync, level-triggered.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import nats
from nats.aio.msg import Msg

from netfate import __version__, naming
from netfate.agent import exports, live_migration, mirrors, switch_dump
from netfate.agent.bundles import ensure_bundle
from netfate.agent.managed import ManagedNFs
from netfate.agent.note_limits import NoteLimiter
from netfate.agent.port_watch import PortsWake
from netfate.agent.ports import PORT_POLL_S, leases_file, read_leases, switch_ports
from netfate.agent.reconcile import NFErrors, diff
from netfate.agent.registration import Backoff, RegistrationRefused, parse_reply
from netfate.agent.settle import DatapathSettler
from netfate.agent.telemetry import Budget, CpuMeter, resources
from netfate.bundle import BundleStore
from netfate.bus import subjects
from netfate.bus.messages import (
    Command,
    DesiredState,
    DumpSpec,
    InstanceSpec,
    NFActual,
    NodeEvent,
    Notification,
    Register,
    Reply,
    Resources,
    SwitchPorts,
    Telemetry,
)
from netfate.bus.urls import servers
from netfate.controller.pipeline import ovs_datapath_id
from netfate.counters import REGISTRATIONS_REFUSED, REGISTRY, LoopFailures
from netfate.drivers import capabilities, registry
from netfate.drivers.ovs import OvsNetwork, OvsServer
from netfate.errors import NetfateError, http_status
from netfate.interfaces import ComputeContext, NetworkDriver, NFInfo
from netfate.metrics import agent as metrics
from netfate.node import NodeDrivers

log = logging.getLogger("netfate.agent")
# How often the NFs' notification queues are read (a directory listing each): a flood alert
# is on the closed loop's critical path, so this bounds its added delay at 0.1 s.
NOTIFY_POLL_S = 0.1


class Agent:
    def __init__(
        self,
        node: str,
        role: str,
        nats_url: str,
        rundir: Any,
        ovs: OvsServer,
        uplink: str | None = None,
        telemetry_interval: float = 2.0,
        mtu: int = 1500,
        budget: Budget | None = None,
        controller_managed: bool = True,
        controller: str | None = None,
        flavours: list[str] | None = None,
        script_timeout: float = 30.0,
        nf_pool_size: int = 0,
    ) -> None:
        """`flavours`: the compute drivers to host (default: every flavour registered under
        `netfate.compute` that can run here); the node advertises exactly those.
        `controller`: OpenFlow targets for the switch, comma-separated (None: leave its own)."""
        self.name = node
        self.role = role
        self.url = nats_url
        self.store = BundleStore(rundir / "bundles")
        self.rundir = rundir
        self.ovs = ovs
        self.network: NetworkDriver = OvsNetwork(ovs)
        drivers = registry.build_all(
            ComputeContext(node, rundir, self.store, mtu=mtu, script_timeout=script_timeout,
                           nf_pool_size=nf_pool_size),
            flavours)
        # The SDN controller owns the switch's flows; the agent runs NFs and reports ports.
        self.node = NodeDrivers.hosting(node, naming.lsi(node), self.network, drivers,
                                 guard_ports=not controller_managed)
        self.controller = controller
        self.ports = SwitchPorts()
        self._leases_file = leases_file(node)
        self.uplink = uplink or naming.ifname(node, "up")
        self.interval = telemetry_interval
        self.cpu = CpuMeter()
        self.budget = budget
        self.desired = DesiredState()
        self.managed: ManagedNFs | None = None  # loaded at the first converge
        self._lock = asyncio.Lock()
        self._nc: Any = None
        self._stop = asyncio.Event()
        self._registering: asyncio.Task[None] | None = None
        self._telemetry_failures = LoopFailures("telemetry", log)
        self._ports_failures = LoopFailures("ports", log)
        self._notify_failures = LoopFailures("notify", log)
        self._note_limits = NoteLimiter()  # per NF: a flood neither fills nor delays

    # -- node operations (in a worker thread) ----------------------------------------------
    def _actual(self) -> list[NFActual]:
        return [
            NFActual(instance_id=i.instance_id, nf_name=i.name, owner=i.owner,
                     state=str(i.state), bundle_sha256=i.bundle_sha256)
            for i in self.node.list_nfs()
        ]

    def _converge(self, desired: DesiredState, fetch: dict[str, str]) -> NFErrors:
        """Make the node match desired; the errors met, by instance id (each on its own)."""
        errors = NFErrors()
        actual = self.node.list_nfs()
        if self.managed is None:
            self.managed = ManagedNFs(self.rundir / "nodes" / self.name / "agent-nfs.json",
                                      (i.instance_id for i in actual))
        acts = diff(desired.instances, actual)
        for iid in acts.delete:
            if iid not in self.managed:
                continue  # started on the node by hand (netfate nf, a benchmark): not ours
            self._try(errors, "delete", iid, lambda i=iid: self._remove(i))
        for spec in acts.recreate:
            self._try(errors, "recreate", spec.instance_id,
                      lambda s=spec: self.node.remove_nf(s.instance_id))
        for spec in acts.create + acts.recreate:
            self._try(errors, "create", spec.instance_id, lambda s=spec: self._deploy(s, fetch))
        # Live updates of different NFs are independent (each driver locks its instance), and
        # each runs in its NF's CPU-capped cgroup: side by side, so that one push carrying
        # several (the closed loop blocking several flooding devices) costs one update's time.
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(acts.update)))) as pool:
            updates = [pool.submit(self._try, errors, "update", spec.instance_id,
                                   lambda s=spec: self.node.driver_of(s.instance_id).update_nf(
                                       s.instance_id, s.config))
                       for spec in acts.update]
        for u in updates:
            u.result()  # anything but a NetfateError goes on up, as before
        for iid in acts.start:
            self._try(errors, "start", iid, lambda i=iid: self.node.driver_of(i).start_nf(i))
        return errors

    def _remove(self, instance_id: str) -> None:
        self.node.remove_nf(instance_id)
        if self.managed is not None:
            self.managed.discard(instance_id)

    @staticmethod
    def _try(errors: NFErrors, op: str, iid: str, fn: Any) -> None:
        try:
            fn()
        except NetfateError as exc:
            errors[iid] = f"{op} {iid}: {exc}"
            errors.statuses[iid] = http_status(exc)
            log.warning("%s %s failed: %s", op, iid, exc)

    def _deploy(self, spec: InstanceSpec, fetch: dict[str, str]) -> NFInfo:
        ensure_bundle(self.store, self.name, spec.bundle_sha256, fetch)
        # Instance ids are node-user-nf; the NF name part is what the driver names.
        name = spec.instance_id.removeprefix(f"{self.name}-{spec.owner}-")
        if self.managed is not None:
            self.managed.add(spec.instance_id)  # before: a crash mid-deploy leaves it ours
        return self.node.deploy_nf(spec.owner, name, spec.bundle_sha256, spec.config,
                                   flavour=spec.flavour)

    # -- messages --------------------------------------------------------------------------
    async def _run(self, fn: Any, *args: Any) -> Any:
        async with self._lock:
            return await asyncio.to_thread(fn, *args)

    def _resources(self, ids: list[str]) -> Resources:
        if self.budget is not None:
            return self.budget.resources(ids)
        return resources(self.cpu, len(ids))

    def _register_msg(self) -> Register:
        nfs = self.node.list_nfs()
        return Register(
            node=self.name, role=self.role,  # type: ignore[arg-type]
            capabilities=sorted(capabilities.functional()),
            infrastructure={**capabilities.infrastructure(self.node.computes),
                            "switch_ports": self.ports.model_dump(mode="json")},
            resources=self._resources([n.instance_id for n in nfs]),
            agent_version=__version__,
        )

    async def register(self) -> None:
        """One attempt. Raises RegistrationRefused when the orchestrator refuses it, and
        whatever the bus raises when it does not answer."""
        msg = self._register_msg()
        reply = await self._nc.request(subjects.REGISTER, msg.model_dump_json().encode(),
                                       timeout=10)
        data = parse_reply(reply.data)
        if data.desired is not None:
            await self._apply(data.desired, data.bundles)
        log.info("registered node %s (generation %s)", self.name, self.desired.generation)

    async def register_until_accepted(self, backoff: Backoff | None = None) -> None:
        """Register, retrying with exponential backoff (capped) until the orchestrator
        takes it or the agent stops; every refusal and failure is logged with its reason."""
        backoff = backoff or Backoff()
        while not self._stop.is_set():
            try:
                await self.register()
                return
            except RegistrationRefused as exc:
                REGISTRY.inc(REGISTRATIONS_REFUSED, side="agent")
                delay = backoff.next()
                log.warning("node %s: the orchestrator refused the registration (%s); "
                            "retrying in %.1fs (attempt %d)", self.name, exc.reason, delay,
                            backoff.attempts)
            except Exception as exc:
                delay = backoff.next()
                log.warning("node %s: registration failed (%s: %s); retrying in %.1fs "
                            "(attempt %d)", self.name, type(exc).__name__, exc, delay,
                            backoff.attempts)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)

    async def _apply(self, desired: DesiredState, bundles: dict[str, str]) -> NFErrors:
        self.desired = desired
        result: NFErrors = await self._run(self._converge, desired, bundles)
        return result

    async def on_command(self, msg: Msg) -> None:
        t0, op = time.perf_counter(), "invalid"
        try:
            cmd = Command.model_validate_json(msg.data)
            op = cmd.op
            reply = await self._handle(cmd)
        except Exception as exc:  # a bad command must never kill the agent
            reply = Reply(ok=False, error=f"{type(exc).__name__}: {exc}",
                          status=http_status(exc))
        metrics.command(op, reply.ok, time.perf_counter() - t0)
        if msg.reply:
            await msg.respond(reply.model_dump_json().encode())

    async def _handle(self, cmd: Command) -> Reply:
        if cmd.op in ("ping", "settle"):
            if cmd.op == "settle":  # not behind _lock: an NF being created must not delay it
                await asyncio.to_thread(self.network.settle)
            return Reply(ok=True)
        if cmd.op == "apply" and cmd.desired is not None:
            errors = await self._apply(cmd.desired, cmd.bundles)
            nfs = await self._run(self._actual)
            return Reply(ok=not errors, error="; ".join(errors.values()) or None,
                         errors=errors, statuses=errors.statuses, nfs=nfs)
        if cmd.op == "status":
            return Reply(ok=True, nfs=await self._run(self._actual))
        if cmd.op in ("export_state", "nf_status") and cmd.instance_id:
            fn = exports.export_state if cmd.op == "export_state" else exports.nf_status
            return Reply(ok=True, data=await self._run(fn, self.node, cmd.instance_id))
        if cmd.op == "export_states":  # half the bus's largest message: room for the rest
            return Reply(ok=True, data=await self._run(
                exports.export_states, self.node, cmd.instance_ids, self._nc.max_payload // 2))
        if cmd.op in live_migration.OPS and cmd.instance_id:
            return Reply(ok=True, data=await self._run(
                live_migration.handle, self.node, cmd.op, cmd.instance_id, cmd.state or {}))
        if cmd.op == "mirror" and cmd.instance_id and cmd.mirror is not None:
            ports = await self._run(self._read_ports)
            return Reply(ok=True, data=await self._run(
                mirrors.mirror, self.node, ports, cmd.instance_id, cmd.mirror))
        if cmd.op == "unmirror" and cmd.instance_id:
            return Reply(ok=True, data=await self._run(mirrors.unmirror, self.node,
                                                       cmd.instance_id))
        if cmd.op == "switch_dump":
            return Reply(ok=True, data=await self._run(
                switch_dump.dump, self.network, self.node.lsi, cmd.dump or DumpSpec()))
        if cmd.op == "import_state" and cmd.instance_id and cmd.state is not None:
            await self._run(self._import_state, cmd.instance_id, cmd.state)
            return Reply(ok=True)
        return Reply(ok=False, error=f"bad command {cmd.op!r}: missing fields")

    def _import_state(self, instance_id: str, state: dict[str, Any]) -> None:
        self.node.driver_of(instance_id).import_state(instance_id, state)

    async def telemetry_loop(self) -> None:
        while not self._stop.is_set():
            try:
                # Behind the commands' lock until it is sent: a list read while a command
                # creates an NF (still "created") and sent after that command's reply would
                # record the NF stopped over the reply's "running" (the orchestrator takes
                # reports in the order they arrive).
                async with self._lock:
                    nfs = await asyncio.to_thread(self._actual)
                    t = Telemetry(node=self.name, ts=time.time(),
                                  resources=self._resources([n.instance_id for n in nfs]),
                                  nfs=nfs, generation=self.desired.generation)
                    await self._nc.publish(subjects.telemetry(self.name),
                                           t.model_dump_json().encode())
                metrics.telemetry(t)
                self._telemetry_failures.ok()
            except Exception as exc:
                self._telemetry_failures.failed(f"telemetry of node {self.name}", exc)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)

    def _read_ports(self) -> SwitchPorts:
        ids = self.network.port_ids(self.node.lsi)
        return switch_ports(self.role, self.uplink, ids, read_leases(self._leases_file))

    async def ports_loop(self) -> None:
        """What the switch has: reported when it changes, and stations coming and going as
        client events (hostapd's AP-STA-CONNECTED / -DISCONNECTED, emulated by the testbed
        setting attached-mac on the port a station's link comes up on)."""
        while not self._stop.is_set():
            try:
                new = await asyncio.to_thread(self._read_ports)
                if new != self.ports:
                    old, self.ports = self.ports, new
                    await self._event("switch", new.model_dump(mode="json"))
                    for mac, port in new.stations.items():
                        if old.stations.get(mac) != port:
                            await self._event("client.associated", {"mac": mac, "port": port})
                    for mac, port in old.stations.items():
                        if new.stations.get(mac) != port:
                            await self._event("client.disassociated",
                                              {"mac": mac, "port": port})
                self._ports_failures.ok()
            except Exception as exc:
                self._ports_failures.failed(f"switch ports of node {self.name}", exc)
            await self._ports_wake.wait(PORT_POLL_S)  # or at once when the switch says

    async def _event(self, kind: str, data: dict[str, Any]) -> None:
        ev = NodeEvent(node=self.name, ts=time.time(), kind=kind,  # type: ignore[arg-type]
                       data=data)
        await self._nc.publish(subjects.events(self.name), ev.model_dump_json().encode())

    async def notify_loop(self) -> None:
        while not self._stop.is_set():
            try:
                notes = await asyncio.to_thread(self._drain_notes)
            except Exception as exc:
                notes = []
                self._notify_failures.failed(f"reading the NF notifications of {self.name}",
                                             exc)
            notes = self._note_limits.admit(notes, time.monotonic(), time.time())
            for note in notes:
                try:
                    n = Notification(
                        node=self.name, nf_id=note.get("nf_id"), nf=note.get("nf"),
                        owner=note.get("owner"), type=str(note.get("type", "unknown")),
                        severity=str(note.get("severity", "warning")),
                        source=note.get("source"), detail=note.get("detail") or {},
                        ts=float(note.get("ts") or time.time()),
                    )
                    await self._nc.publish(subjects.notify(self.name), n.model_dump_json().encode())
                    self._notify_failures.ok()
                except Exception as exc:
                    self._notify_failures.failed(
                        f"forwarding notification {note.get('type')!r} of NF "
                        f"{note.get('nf_id')!r} on node {self.name}", exc)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), NOTIFY_POLL_S)

    def _drain_notes(self) -> list[dict[str, Any]]:
        """Every flavour's queued NF notifications."""
        return [n for d in self.node.computes.values() for n in d.queue.drain()]

    async def run(self) -> None:
        async def reconnected() -> None:
            log.info("reconnected to NATS; registering again")
            self._spawn_registration()

        self._nc = await nats.connect(
            servers(self.url), name=f"agent-{self.name}", max_reconnect_attempts=-1,
            reconnect_time_wait=0.5, reconnected_cb=reconnected,
        )
        await self.network_ready()
        self._ports_wake = PortsWake()
        await asyncio.to_thread(self._ports_wake.watch, self.network, self.name)
        try:
            self.ports = await asyncio.to_thread(self._read_ports)
        except Exception as exc:  # reported again by ports_loop once it can read them
            log.warning("node %s: cannot read the switch's ports before registering: %s: %s",
                        self.name, type(exc).__name__, exc)
        await self._nc.subscribe(subjects.command(self.name), cb=self.on_command)
        settler = DatapathSettler(self.name, self.network.settle, self._nc.publish)
        await self._nc.subscribe(subjects.controller_synced(self.name), cb=settler.on_synced)
        self._spawn_registration()
        assert self._registering is not None
        await self._registering
        tasks = [asyncio.create_task(self.telemetry_loop()),
                 asyncio.create_task(self.notify_loop()),
                 asyncio.create_task(self.ports_loop())]
        await self._stop.wait()
        for t in tasks:
            t.cancel()
        self._ports_wake.close()
        if self._registering is not None:
            self._registering.cancel()
        # The bus may be gone already (orchestrator stopped first): don't wait on it.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._nc.close(), 2)
        for compute in self.node.computes.values():  # their pools of pre-made NFs
            close = getattr(compute, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await self._run(close)
        self.network.close()

    async def network_ready(self) -> None:
        # The node's datapath id is how a controller knows which node's switch connected.
        await self._run(functools.partial(self.network.create_lsi, self.node.lsi,
                                          controller=self.controller,
                                          datapath_id=ovs_datapath_id(self.name)))
        removed = await self._run(self._collect_garbage)
        if removed:
            log.info("removed leftovers of an earlier crash: %s", removed)

    def _collect_garbage(self) -> list[str]:
        removed = [r for d in self.node.computes.values() for r in d.collect_garbage()]
        nf_ports = {p.host_if for i in self.node.list_nfs() for p in i.ports}
        stale = [p for p in self.network.list_ports(self.node.lsi)
                 if naming.is_nf_port(p) and p not in nf_ports]
        if stale:
            self.network.delete_ports(self.node.lsi, stale)
            removed += [f"port {p}" for p in stale]
        return removed

    def _spawn_registration(self) -> None:
        """Register in the background (at start, and again after a reconnect), with one
        retry loop at a time."""
        if self._registering is None or self._registering.done():
            self._registering = asyncio.create_task(self.register_until_accepted())

    def stop(self) -> None:
        self._stop.set()
