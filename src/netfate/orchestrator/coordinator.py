"""The NF coordinator [VNFM]: runs the engine's plans (and direct lifecycle requests) as
operation occurrences, through the agents, idempotently.

The database holds each node's desired state; an operation changes it and pushes it to the
node's agent, which converges and answers with its actual NFs. An agent that does not answer
in time fails the operation cleanly: its change to the desired state is rolled back, and
the node converges to that on its next registration or reconciliation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from netfate.bus.messages import Command, DesiredState, InstanceSpec, Reply, SteeringSpec
from netfate.db import Database, repo
from netfate.db.models import ActualState, LcmOperation, OpState
from netfate.db.models import DesiredState as Want
from netfate.engine import Event, Migrate, Place, Plan, Release, Steer, Unsteer, get_policy
from netfate.engine import plan as engine_plan
from netfate.errors import NetfateError, NotFound
from netfate.orchestrator import snapshot
from netfate.orchestrator.agents import AgentBus, AgentUnreachable
from netfate.orchestrator.hub import EventHub

log = logging.getLogger("netfate.coordinator")


def problem(title: str, detail: str, status: int = 500) -> dict[str, Any]:
    return {"type": "about:blank", "title": title, "status": status, "detail": detail}


@dataclass
class PlanRun:
    plan: Plan
    ops: list[str] = field(default_factory=list)


class Coordinator:
    def __init__(self, db: Database, bus: AgentBus, hub: EventHub, public_url: str,
                 policy: str = "netfate") -> None:
        self.db = db
        self.bus = bus
        self.hub = hub
        self.public_url = public_url
        self.policy = get_policy(policy)
        self._plan_lock = asyncio.Lock()
        self._node_locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- desired state -> agents ----------------------------------------------------------
    def desired_for(self, node: str) -> tuple[DesiredState, dict[str, str]]:
        with self.db.session() as s:
            d = repo.desired_state_for_node(s, node)
        instances = [
            InstanceSpec(instance_id=i["id"], nf_name=i["nf_name"], owner=i["owner"],
                         bundle_sha256=i["bundle_sha256"], config=i["config"] or {})
            for i in d["instances"]
        ]
        steering = [
            SteeringSpec(user=r["user"], mac=r["mac"], chain=[c for c in r["chain"]])
            for r in d["steering"] if r["mac"]
        ]
        bundles = {i.bundle_sha256: self.bundle_url(i.bundle_sha256) for i in instances}
        gen = int(d["revision"], 16) & 0x7FFFFFFF
        return DesiredState(generation=gen, instances=instances, steering=steering), bundles

    def bundle_url(self, sha: str) -> str:
        return f"{self.public_url}/api/v1/vnf_packages/{sha}/content"

    def apply_command(self, node: str) -> Command:
        desired, bundles = self.desired_for(node)
        return Command(op="apply", desired=desired, bundles=bundles)

    async def push(self, node: str) -> Reply:
        """Send the node its desired state; record what it reports."""
        lock = self._node_locks.setdefault(node, asyncio.Lock())
        async with lock:
            reply = await self.bus.command(node, self.apply_command(node))
        self.record_actual(node, reply)
        return reply

    def record_actual(self, node: str, reply: Reply) -> None:
        running = {n.instance_id: n.state for n in reply.nfs}
        with self.db.session() as s:
            for inst in repo.list_instances(s, node=node):
                st = running.get(inst.id)
                if inst.desired_state == Want.ABSENT and st is None:
                    repo.delete_instance(s, inst.id)
                elif st is not None:
                    actual = ActualState.RUNNING if st == "running" else ActualState.STOPPED
                    if inst.actual_state != actual:
                        repo.set_instance_actual_state(s, inst.id, actual)

    # -- operations -----------------------------------------------------------------------
    def _new_op(self, op: LcmOperation, iid: str, params: dict[str, Any]) -> str:
        with self.db.session() as s:
            occ = repo.new_op_occ(s, op, iid, params)
            op_id = occ.id
        self.hub.publish("op", {"id": op_id, "operation": op.value, "vnf_instance_id": iid,
                                "state": "PROCESSING"})
        return op_id

    def _op_state(self, op_id: str, state: OpState, error: dict[str, Any] | None = None) -> None:
        with self.db.session() as s:
            occ = repo.set_op_state(s, op_id, state, error=error)
            data = {"id": op_id, "operation": occ.operation.value,
                    "vnf_instance_id": occ.vnf_instance_id, "state": state.value}
        self.hub.publish("op", data)

    def _finish_failed(self, op_id: str, title: str, exc: Exception, rolled_back: bool) -> None:
        err = problem(title, str(exc))
        if rolled_back:
            self._op_state(op_id, OpState.ROLLING_BACK, err)
            self._op_state(op_id, OpState.ROLLED_BACK, err)
        else:
            self._op_state(op_id, OpState.FAILED, err)

    def _running_on(self, reply: Reply, iid: str) -> bool:
        return any(n.instance_id == iid and n.state == "running" for n in reply.nfs)

    def _ensure_instance(self, node: str, owner: str, nf: str, iid: str,
                         config: dict[str, Any] | None) -> None:
        with self.db.session() as s:
            bundle = self._latest_bundle(s, nf)
            if config is None:
                with contextlib.suppress(NotFound):
                    config = (repo.get_user(s, owner).nf_config or {}).get(nf, {})
            repo.upsert_instance(s, node=node, owner=owner, nf_name=nf,
                                 bundle_sha256=bundle, flavour="native", instance_id=iid,
                                 config=config or {}, desired_state=Want.PRESENT)

    @staticmethod
    def _latest_bundle(s: Any, nf: str) -> str:
        bundles = repo.list_bundles(s, name=nf)
        if not bundles:
            raise NotFound(f"no bundle for NF {nf!r} in the catalogue")
        return max(bundles, key=lambda b: b.uploaded_at).sha256

    def _set_absent(self, iid: str) -> str | None:
        with self.db.session() as s:
            try:
                inst = repo.get_instance(s, iid)
            except NotFound:
                return None
            repo.set_instance_desired_state(s, iid, Want.ABSENT)
            return inst.node_name

    async def instantiate(self, op_id: str, node: str, owner: str, nf: str, iid: str,
                          config: dict[str, Any] | None = None) -> bool:
        try:
            self._ensure_instance(node, owner, nf, iid, config)
            reply = await self.push(node)
            if not self._running_on(reply, iid):
                raise NetfateError(reply.error or f"{iid} did not come up on {node}")
            self._op_state(op_id, OpState.COMPLETED)
            return True
        except Exception as exc:
            self._set_absent(iid)
            with contextlib.suppress(NetfateError):
                await self.push(node)  # undo what the agent may have half-made
            self._finish_failed(op_id, "instantiation failed", exc, rolled_back=True)
            return False

    async def terminate(self, op_id: str, iid: str) -> bool:
        node = self._set_absent(iid)
        if node is None:
            self._op_state(op_id, OpState.COMPLETED)
            return True
        try:
            reply = await self.push(node)
            if any(n.instance_id == iid for n in reply.nfs):
                raise NetfateError(reply.error or f"{iid} is still on {node}")
            self._op_state(op_id, OpState.COMPLETED)
            return True
        except Exception as exc:
            # The desired state says absent; the node converges when its agent is back.
            self._finish_failed(op_id, "termination not confirmed", exc, rolled_back=False)
            return False

    async def update(self, op_id: str, iid: str, config: dict[str, Any]) -> bool:
        with self.db.session() as s:
            inst = repo.get_instance(s, iid)
            old, node = dict(inst.config), inst.node_name
            repo.upsert_instance(s, node=node, owner=inst.owner, nf_name=inst.nf_name,
                                 bundle_sha256=inst.bundle_sha256, flavour=inst.flavour,
                                 instance_id=iid, config=config)
        try:
            reply = await self.push(node)
            if not reply.ok:
                raise NetfateError(reply.error or "update failed")
            self._op_state(op_id, OpState.COMPLETED)
            return True
        except Exception as exc:
            with self.db.session() as s:
                i = repo.get_instance(s, iid)
                repo.upsert_instance(s, node=node, owner=i.owner, nf_name=i.nf_name,
                                     bundle_sha256=i.bundle_sha256, flavour=i.flavour,
                                     instance_id=iid, config=old)
            with contextlib.suppress(NetfateError):
                await self.push(node)
            self._finish_failed(op_id, "update failed", exc, rolled_back=True)
            return False

    async def migrate(self, op_id: str, iid: str, dst: str, new_iid: str,
                      deferred: list[str] | None = None) -> bool:
        """Make before break: the NF comes up on dst, takes the state exported on the source,
        and only then is the source released (at the end of the plan when deferred)."""
        with self.db.session() as s:
            src_inst = repo.get_instance(s, iid)
            src, owner, nf = src_inst.node_name, src_inst.owner, src_inst.nf_name
            config = dict(src_inst.config)
            exportable = bool((repo.get_bundle(s, src_inst.bundle_sha256).descriptor
                                .get("state") or {}).get("exportable"))
            src_online = repo.get_node(s, src).online
        try:
            self._ensure_instance(dst, owner, nf, new_iid, config)
            reply = await self.push(dst)
            if not self._running_on(reply, new_iid):
                raise NetfateError(reply.error or f"{new_iid} did not come up on {dst}")
            if exportable and src_online:
                exported = await self.bus.command(src, Command(op="export_state",
                                                               instance_id=iid))
                if not exported.ok:
                    raise NetfateError(f"export on {src}: {exported.error}")
                imported = await self.bus.command(dst, Command(
                    op="import_state", instance_id=new_iid, state=exported.data))
                if not imported.ok:
                    raise NetfateError(f"import on {dst}: {imported.error}")
        except Exception as exc:
            self._set_absent(new_iid)
            with contextlib.suppress(NetfateError):
                await self.push(dst)
            self._finish_failed(op_id, "migration failed", exc, rolled_back=True)
            return False
        self._set_absent(iid)
        if deferred is not None:
            deferred.append(src)
        else:
            with contextlib.suppress(NetfateError):
                await self.push(src)
        self._op_state(op_id, OpState.COMPLETED)
        return True

    async def steer(self, user: str, node: str, chain: list[str], mac: str | None,
                    ip: str | None) -> None:
        with self.db.session() as s:
            repo.set_steering(s, user=user, node=node, chain=chain, mac=mac, ip=ip)
        with contextlib.suppress(NetfateError):
            reply = await self.push(node)
            if not reply.error or f"steer {user}:" not in reply.error:
                with self.db.session() as s:
                    repo.mark_steering_installed(s, user=user, node=node, installed=True)

    async def unsteer(self, user: str, node: str) -> None:
        with self.db.session() as s:
            repo.clear_steering(s, user=user, node=node)
        with contextlib.suppress(NetfateError):
            await self.push(node)

    # -- plans ----------------------------------------------------------------------------
    def plan_for(self, event: Event) -> Plan:
        with self.db.session() as s:
            snap = snapshot.build(s)
        return engine_plan(snap, event, self.policy)

    def open_ops(self, plan: Plan) -> list[str | None]:
        """An operation occurrence for each lifecycle intent, before any runs."""
        ids: list[str | None] = []
        for it in plan.intents:
            if isinstance(it, Place):
                ids.append(self._new_op(LcmOperation.INSTANTIATE, it.instance_id,
                                        {"node": it.node, "nf": it.nf, "owner": it.user,
                                         "reason": it.reason}))
            elif isinstance(it, Migrate):
                ids.append(self._new_op(LcmOperation.MIGRATE, it.instance_id,
                                        {"src": it.src, "dst": it.dst,
                                         "new_instance_id": it.new_instance_id,
                                         "reason": it.reason}))
            elif isinstance(it, Release):
                ids.append(self._new_op(LcmOperation.RELEASE, it.instance_id,
                                        {"node": it.node, "reason": it.reason}))
            else:
                ids.append(None)
        for u in plan.unplaced:
            op_id = self._new_op(LcmOperation.INSTANTIATE, f"{u.user}-{u.nf}",
                                 {"owner": u.user, "nf": u.nf})
            self._op_state(op_id, OpState.FAILED, problem("no node can host the NF", u.reason,
                                                          409))
        return ids

    async def run_plan(self, plan: Plan, ops: list[str | None]) -> None:
        deferred: list[str] = []
        for it, op_id in zip(plan.intents, ops, strict=True):
            try:
                if isinstance(it, Place) and op_id:
                    await self.instantiate(op_id, it.node, it.user, it.nf, it.instance_id)
                elif isinstance(it, Migrate) and op_id:
                    await self.migrate(op_id, it.instance_id, it.dst, it.new_instance_id,
                                       deferred)
                elif isinstance(it, Release) and op_id:
                    await self.terminate(op_id, it.instance_id)
                elif isinstance(it, Steer):
                    await self.steer(it.user, it.node, list(it.chain), it.mac, it.ip)
                elif isinstance(it, Unsteer):
                    await self.unsteer(it.user, it.node)
            except Exception:
                log.exception("intent %s failed", it)
        for node in dict.fromkeys(deferred):  # sources released after the new steering
            with contextlib.suppress(NetfateError):
                await self.push(node)

    async def handle(self, event: Event, background: bool = True,
                     record: Callable[[], object] | None = None) -> PlanRun:
        """Plan for an event and run the plan (serialised: one plan at a time).

        The engine plans on the world as it was before the event; `record` then writes the
        event itself to the database (new readings, the user's new access node...)."""
        async with self._plan_lock:
            plan = self.plan_for(event)
            if record is not None:
                record()
            ops = self.open_ops(plan)
        run = PlanRun(plan, [o for o in ops if o])
        if plan.intents:
            self.hub.publish("plan", {"event": event.model_dump(mode="json"),
                                      "intents": [i.model_dump(mode="json")
                                                  for i in plan.intents]})
        coro = self._run_locked(plan, ops)
        if background:
            self.spawn(coro)
        else:
            await coro
        return run

    async def _run_locked(self, plan: Plan, ops: list[str | None]) -> None:
        async with self._plan_lock:
            await self.run_plan(plan, ops)

    def spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float = 30.0) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    # -- reconciliation -------------------------------------------------------------------
    async def reconcile(self, node_timeout: float) -> None:
        """Mark silent nodes offline; push desired state to nodes that differ from it."""
        now = time.time()
        with self.db.session() as s:
            nodes = [(n.name, n.online, n.last_seen) for n in repo.list_nodes(s)]
        for name, online, seen in nodes:
            if online and seen is not None and now - seen > node_timeout:
                with self.db.session() as s:
                    repo.set_node_online(s, name, False)
                self.hub.publish("node", {"name": name, "online": False})
                continue
            if not online:
                continue
            if self.needs_push(name):
                with contextlib.suppress(AgentUnreachable, NetfateError):
                    await self.push(name)

    def needs_push(self, node: str) -> bool:
        with self.db.session() as s:
            for inst in repo.list_instances(s, node=node):
                if inst.desired_state == Want.PRESENT and inst.actual_state != ActualState.RUNNING:
                    return True
                if inst.desired_state == Want.ABSENT:
                    return True
        return False

    def observe(self, node: str, nfs: list[Any]) -> None:
        """Telemetry's NF list: actual states, and NFs the database does not know about."""
        self.record_actual(node, Reply(ok=True, nfs=nfs))
