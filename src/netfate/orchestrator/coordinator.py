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
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from netfate.bus.messages import Command, DesiredState, InstanceSpec, Reply
from netfate.counters import task_failures
from netfate.db import Database, repo
from netfate.db.models import (
    ActualState,
    Bundle,
    LcmOperation,
    Node,
    OpState,
    SteeringRule,
    VnfInstance,
)
from netfate.db.models import DesiredState as Want
from netfate.engine import (
    Event,
    Migrate,
    Place,
    Plan,
    Release,
    Steer,
    Unsteer,
    UserAssociated,
    UserDisassociated,
    UserIdle,
    get_policy,
)
from netfate.engine import plan as engine_plan
from netfate.errors import NetfateError, NotFound
from netfate.orchestrator import snapshot
from netfate.orchestrator.agents import AgentBus, AgentUnreachable
from netfate.orchestrator.flavour import flavour_for
from netfate.orchestrator.hub import EventHub
from netfate.orchestrator.locks import Gate, KeyedLocks
from netfate.orchestrator.switches import Switches

log = logging.getLogger("netfate.coordinator")


def _unreachable(exc: Exception, node: str) -> bool:
    """The agent of `node` did not answer: a second command (an undo) would wait as long for
    nothing. Its next registration or reconciliation converges it instead."""
    return isinstance(exc, AgentUnreachable) and exc.node == node


def problem(title: str, detail: str, status: int = 500) -> dict[str, Any]:
    return {"type": "about:blank", "title": title, "status": status, "detail": detail}


@dataclass
class PlanRun:
    plan: Plan
    ops: list[str] = field(default_factory=list)


class Coordinator:
    def __init__(self, db: Database, bus: AgentBus, hub: EventHub, public_url: str,
                 policy: str = "netfate", switches: Switches | None = None) -> None:
        self.db = db
        self.switches = switches  # the SDN controller's desired states (steering)
        self.bus = bus
        self.hub = hub
        self.public_url = public_url
        self.policy = get_policy(policy)
        # One plan at a time per user: a user event holds the gate shared and its user's lock
        # from planning to the end of the plan's run. A node-wide or global event (telemetry
        # re-evaluation, node up/down, reconcile) touches many users: it holds the gate
        # exclusively. Plans of different users run concurrently.
        self._gate = Gate()
        self._user_locks = KeyedLocks()
        self._node_locks: dict[str, asyncio.Lock] = {}
        # Per node: changes made to its desired state, and the change count its agent was
        # last sent (to skip a push that would send nothing new).
        self._changes: dict[str, int] = {}
        self._sent: dict[str, int] = {}
        # Per node: writes of reported actual states, and the last telemetry NF list observed
        # with the counts it was observed at (an unchanged report changes nothing).
        self._writes: dict[str, int] = {}
        self._observed: dict[str, tuple[frozenset[tuple[str, str]], tuple[int, int]]] = {}
        self._reports: dict[str, dict[str, str]] = {}  # telemetry's NF lists, not yet recorded
        self._tasks: set[asyncio.Task[None]] = set()

    # -- desired state -> agents ----------------------------------------------------------
    def desired_for(self, node: str) -> tuple[DesiredState, dict[str, str]]:
        with self.db.session() as s:
            d = desired_state(s, node)
        instances = [
            InstanceSpec(instance_id=i["id"], nf_name=i["nf_name"], owner=i["owner"],
                         bundle_sha256=i["bundle_sha256"], config=i["config"] or {},
                         flavour=i["flavour"])
            for i in d["instances"]
        ]
        bundles = {i.bundle_sha256: self.bundle_url(i.bundle_sha256) for i in instances}
        gen = int(d["revision"], 16) & 0x7FFFFFFF
        return DesiredState(generation=gen, instances=instances), bundles

    def bundle_url(self, sha: str) -> str:
        return f"{self.public_url}/api/v1/vnf_packages/{sha}/content"

    def apply_command(self, node: str) -> Command:
        desired, bundles = self.desired_for(node)
        return Command(op="apply", desired=desired, bundles=bundles)

    def changed(self, node: str) -> None:
        """The coordinator changed `node`'s desired state (its agent must be sent it)."""
        self._changes[node] = self._changes.get(node, 0) + 1

    async def push(self, node: str) -> Reply:
        """Send the node its desired state; record what it reports. Pushes to one node are
        serialised, each sending the desired state as it is when its turn comes, and its
        reply is recorded before the next push starts."""
        lock = self._node_locks.setdefault(node, asyncio.Lock())
        async with lock:
            seen = self._changes.get(node, 0)
            reply = await self.bus.command(node, self.apply_command(node))
            self._sent[node] = max(self._sent.get(node, 0), seen)
            self.record_actual(node, reply)
        return reply

    async def push_if_changed(self, node: str) -> None:
        """Push unless the agent was already sent every change the coordinator made."""
        if self._sent.get(node, -1) >= self._changes.get(node, 0):
            return
        with contextlib.suppress(NetfateError):
            await self.push(node)

    def record_actual(self, node: str, reply: Reply) -> None:
        """What the node reports: actual states, and the removal of instances it no longer
        runs that should be absent. Reads with one query; writes only what differs."""
        # A telemetry report received before this reply is older than it: drop it.
        self._reports.pop(node, None)
        with self.db.session() as s:
            self._record(s, {node: {n.instance_id: n.state for n in reply.nfs}})

    def _record(self, s: Any, reports: dict[str, dict[str, str]]) -> None:
        rows = []
        nodes = sorted(reports)
        for k in range(0, len(nodes), 500):
            rows += s.connection().execute(_Q_ON_NODES, {"nodes": nodes[k:k + 500]}).all()
        wrote: set[str] = set()
        gone: list[dict[str, Any]] = []
        states: list[dict[str, Any]] = []
        now = time.time()
        for iid, node, desired, actual_now in rows:
            st = reports[node].get(iid)
            if desired == Want.ABSENT and st is None:
                gone.append({"i": iid})
                wrote.add(node)
            elif st is not None:
                actual = ActualState.RUNNING if st == "running" else ActualState.STOPPED
                if actual_now != actual:
                    states.append({"i": iid, "a": actual, "t": now})
                    wrote.add(node)
        # As repo.delete_instance and repo.set_instance_actual_state would, in two statements
        # for any number of rows (the ids come from the rows just read).
        conn = s.connection()
        if gone:
            conn.execute(sa.delete(VnfInstance).where(VnfInstance.id == sa.bindparam("i")),
                         gone)
        if states:
            conn.execute(sa.update(VnfInstance).where(VnfInstance.id == sa.bindparam("i"))
                         .values(actual_state=sa.bindparam("a"), updated_at=sa.bindparam("t")),
                         states)
        for node in wrote:
            self._writes[node] = self._writes.get(node, 0) + 1

    # -- operations -----------------------------------------------------------------------
    def _new_op(self, op: LcmOperation, iid: str, params: dict[str, Any]) -> str:
        return self._new_ops([(op, iid, params)])[0]

    def _new_ops(self, specs: list[tuple[LcmOperation, str, dict[str, Any]]]) -> list[str]:
        """Operation occurrences, PROCESSING, in one transaction."""
        if not specs:
            return []
        with self.db.session() as s:
            ids = [repo.new_op_occ(s, op, iid, params).id for op, iid, params in specs]
        for op_id, (op, iid, _) in zip(ids, specs, strict=True):
            self.hub.publish("op", {"id": op_id, "operation": op.value,
                                    "vnf_instance_id": iid, "state": "PROCESSING"})
        return ids

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
                                 bundle_sha256=bundle, instance_id=iid,
                                 flavour=flavour_for(s, node, bundle),
                                 config=config or {}, desired_state=Want.PRESENT)
        self.changed(node)

    @staticmethod
    def _latest_bundle(s: Any, nf: str) -> str:
        # The newest upload (ties: the first by sha256), without loading descriptors or bytes.
        sha: str | None = s.scalar(
            sa.select(Bundle.sha256).where(Bundle.name == nf)
            .order_by(Bundle.uploaded_at.desc(), Bundle.sha256).limit(1))
        if sha is None:
            raise NotFound(f"no bundle for NF {nf!r} in the catalogue")
        return sha

    def _set_absent(self, iid: str) -> str | None:
        with self.db.session() as s:
            try:
                inst = repo.get_instance(s, iid)
            except NotFound:
                return None
            repo.set_instance_desired_state(s, iid, Want.ABSENT)
            node = inst.node_name
        self.changed(node)
        return node

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
            if not _unreachable(exc, node):  # if it is, its next sync undoes it
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
        self.changed(node)
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
            if not _unreachable(exc, node):
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
            # The descriptor only: get_bundle would load the bundle's bytes too.
            descriptor = s.scalar(sa.select(Bundle.descriptor)
                                  .where(Bundle.sha256 == src_inst.bundle_sha256)) or {}
            exportable = bool((descriptor.get("state") or {}).get("exportable"))
            src_online = repo.get_node(s, src).online
        timings: dict[str, float] = {}
        t = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal t
            now = time.perf_counter()
            timings[f"{name}_ms"] = round((now - t) * 1000, 2)
            t = now

        try:
            self._ensure_instance(dst, owner, nf, new_iid, config)
            reply = await self.push(dst)
            if not self._running_on(reply, new_iid):
                raise NetfateError(reply.error or f"{new_iid} did not come up on {dst}")
            lap("instantiate")
            if exportable and src_online:
                exported = await self.bus.command(src, Command(op="export_state",
                                                               instance_id=iid))
                if not exported.ok:
                    raise NetfateError(f"export on {src}: {exported.error}")
                lap("export")
                imported = await self.bus.command(dst, Command(
                    op="import_state", instance_id=new_iid, state=exported.data))
                if not imported.ok:
                    raise NetfateError(f"import on {dst}: {imported.error}")
                lap("import")
        except Exception as exc:
            self._set_absent(new_iid)
            if not _unreachable(exc, dst):
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
        with self.db.session() as s, contextlib.suppress(NetfateError):
            repo.merge_op_params(s, op_id, {"timings": timings})
        self._op_state(op_id, OpState.COMPLETED)
        return True

    async def steer(self, user: str, node: str, chain: list[str], mac: str | None,
                    ip: str | None) -> None:
        """The controller steers: publish the switches' new states and wait for the flows."""
        with self.db.session() as s:
            repo.set_steering(s, user=user, node=node, chain=chain, mac=mac, ip=ip)
        if self.switches is None:
            return
        reports = await self.switches.apply(node)
        if any(r.node == node and not r.errors for r in reports):
            with self.db.session() as s, contextlib.suppress(NetfateError):
                repo.mark_steering_installed(s, user=user, node=node, installed=True)

    async def unsteer(self, user: str, node: str) -> None:
        with self.db.session() as s:
            repo.clear_steering(s, user=user, node=node)
        if self.switches is None:
            return
        reports = await self.switches.apply(node)
        if any(r.node == node and not r.errors for r in reports):
            with self.db.session() as s, contextlib.suppress(NetfateError):
                repo.mark_steering_installed(s, user=user, node=node, installed=False)

    # -- plans ----------------------------------------------------------------------------
    def plan_for(self, event: Event) -> Plan:
        """The policy's plan on the world as recorded: the event's part of it when the policy
        declares that is all it reads (snapshot.build_for), else all of it."""
        with self.db.session() as s:
            snap = (snapshot.build_for(s, event) if snapshot.scoped(self.policy)
                    else snapshot.build(s))
        return engine_plan(snap, event, self.policy)

    def open_ops(self, plan: Plan) -> list[str | None]:
        """An operation occurrence for each lifecycle intent, before any runs."""
        specs: list[tuple[LcmOperation, str, dict[str, Any]]] = []
        slots: list[bool] = []
        for it in plan.intents:
            if isinstance(it, Place):
                specs.append((LcmOperation.INSTANTIATE, it.instance_id,
                              {"node": it.node, "nf": it.nf, "owner": it.user,
                               "reason": it.reason}))
            elif isinstance(it, Migrate):
                specs.append((LcmOperation.MIGRATE, it.instance_id,
                              {"src": it.src, "dst": it.dst,
                               "new_instance_id": it.new_instance_id, "reason": it.reason}))
            elif isinstance(it, Release):
                specs.append((LcmOperation.RELEASE, it.instance_id,
                              {"node": it.node, "reason": it.reason}))
            slots.append(isinstance(it, Place | Migrate | Release))
        made = iter(self._new_ops(specs))
        ids: list[str | None] = [next(made) if slot else None for slot in slots]
        for u in plan.unplaced:
            op_id = self._new_op(LcmOperation.INSTANTIATE, f"{u.user}-{u.nf}",
                                 {"owner": u.user, "nf": u.nf})
            self._op_state(op_id, OpState.FAILED, problem("no node can host the NF", u.reason,
                                                          409))
        return ids

    async def run_plan(self, plan: Plan, ops: list[str | None]) -> None:
        deferred: list[str] = []
        failed: set[str] = set()  # users whose NF did not move: their steering stays as is
        for it, op_id in zip(plan.intents, ops, strict=True):
            try:
                if isinstance(it, Steer | Unsteer) and it.user in failed:
                    log.info("%s: steering at %s left as it was (an NF did not move)",
                             it.user, it.node)
                    continue
                if isinstance(it, Place) and op_id:
                    await self.instantiate(op_id, it.node, it.user, it.nf, it.instance_id)
                elif isinstance(it, Migrate) and op_id:
                    if not await self.migrate(op_id, it.instance_id, it.dst,
                                              it.new_instance_id, deferred):
                        # Make-before-break failed: the source NF still runs and still
                        # serves the user (anchored there while they are elsewhere).
                        failed.add(it.user)
                elif isinstance(it, Release) and op_id:
                    await self.terminate(op_id, it.instance_id)
                elif isinstance(it, Steer):
                    await self.steer(it.user, it.node, list(it.chain), it.mac, it.ip)
                elif isinstance(it, Unsteer):
                    await self.unsteer(it.user, it.node)
            except Exception:
                log.exception("intent %s failed", it)
        for node in dict.fromkeys(deferred):  # sources released after the new steering
            await self.push_if_changed(node)  # (an Unsteer there may have sent it already)

    async def handle(self, event: Event, background: bool = True,
                     record: Callable[[], object] | None = None) -> PlanRun:
        """Plan for an event and run the plan: one plan at a time per user (a node-wide or
        global event waits for every running plan, and holds off new ones, until its own
        plan has run).

        The engine plans on the world as it was before the event; `record` then writes the
        event itself to the database (new readings, the user's new access node...)."""
        user = _user_of(event)
        exclusive = user is None
        await self._gate.acquire(exclusive)
        try:
            if user is not None:
                await self._user_locks.acquire(user)
            try:
                plan = self.plan_for(event)
                if record is not None:
                    record()
                ops = self.open_ops(plan)
            except BaseException:
                if user is not None:
                    self._user_locks.release(user)
                raise
        except BaseException:
            self._gate.release(exclusive)
            raise
        run = PlanRun(plan, [o for o in ops if o])
        if plan.intents:
            self.hub.publish("plan", {"event": event.model_dump(mode="json"),
                                      "intents": [i.model_dump(mode="json")
                                                  for i in plan.intents]})
        coro = self._run_locked(plan, ops, user, exclusive)
        if background:
            self.spawn(coro)
        else:
            await coro
        return run

    async def _run_locked(self, plan: Plan, ops: list[str | None], user: str | None,
                          exclusive: bool) -> None:
        """Run a plan, then let the next plan of its user (or anyone's, if exclusive) go."""
        try:
            await self.run_plan(plan, ops)
        finally:
            if user is not None:
                self._user_locks.release(user)
            self._gate.release(exclusive)

    def spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(task_failures("coordinator", log))

    async def drain(self, timeout: float = 30.0) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    # -- reconciliation -------------------------------------------------------------------
    async def reconcile(self, node_timeout: float) -> None:
        """Mark silent nodes offline; push desired state to nodes that differ from it."""
        now = time.time()
        with self.db.session() as s:
            nodes = s.connection().execute(_Q_NODE_LIVENESS).all()
            behind = self.nodes_needing_push(s)
        for name, online, seen in nodes:
            if online and seen is not None and now - seen > node_timeout:
                with self.db.session() as s:
                    repo.set_node_online(s, name, False)
                self.hub.publish("node", {"name": name, "online": False})
                continue
            if not online:
                continue
            lock = self._node_locks.get(name)
            if name in behind and not (lock is not None and lock.locked()):
                # (a node with a push in flight gets the current desired state from it)
                with contextlib.suppress(AgentUnreachable, NetfateError):
                    await self.push(name)

    @staticmethod
    def nodes_needing_push(s: Any) -> set[str]:
        """Nodes with an instance that should run but is not reported running, or that
        should be gone: one query for all nodes."""
        q = (sa.select(VnfInstance.node_name).distinct()
             .where(sa.or_(VnfInstance.desired_state == Want.ABSENT,
                           VnfInstance.actual_state != ActualState.RUNNING)))
        return set(s.scalars(q))

    def needs_push(self, node: str) -> bool:
        with self.db.session() as s:
            for inst in repo.list_instances(s, node=node):
                if inst.desired_state == Want.PRESENT and inst.actual_state != ActualState.RUNNING:
                    return True
                if inst.desired_state == Want.ABSENT:
                    return True
        return False

    def observe(self, node: str, nfs: list[Any]) -> None:
        """Telemetry's NF list: actual states, and NFs the database does not know about.
        Recorded at the next `record_observed` (the orchestrator calls it every second), all
        nodes' reports in one transaction; a push's reply supersedes an older report."""
        self._reports[node] = {n.instance_id: n.state for n in nfs}

    def record_observed(self) -> None:
        """Record the telemetry reports received since the last call. A report equal to the
        node's previous one, with no change by the coordinator to the node's instances since,
        would change nothing: it is not compared again."""
        reports, self._reports = self._reports, {}
        todo: dict[str, dict[str, str]] = {}
        keys: dict[str, frozenset[tuple[str, str]]] = {}
        for node, nfs in reports.items():
            key = frozenset(nfs.items())
            if self._observed.get(node) != (key, self._marks(node)):
                todo[node], keys[node] = nfs, key
        if todo:
            with self.db.session() as s:
                self._record(s, todo)
        for node, key in keys.items():
            self._observed[node] = (key, self._marks(node))

    def _marks(self, node: str) -> tuple[int, int]:
        return self._changes.get(node, 0), self._writes.get(node, 0)


# Statements built once: building one per call costs more than running it on SQLite.
_NODE: sa.BindParameter[Any] = sa.bindparam("node")
_Q_NODE = sa.select(Node.name).where(Node.name == _NODE)
_Q_DESIRED_INSTANCES = (
    sa.select(VnfInstance.id, VnfInstance.nf_name, VnfInstance.owner, VnfInstance.bundle_sha256,
              VnfInstance.flavour, VnfInstance.config, VnfInstance.active_users)
    .where(VnfInstance.node_name == _NODE, VnfInstance.desired_state == Want.PRESENT)
    .order_by(VnfInstance.id))
_Q_DESIRED_RULES = (
    sa.select(SteeringRule.user_name, SteeringRule.mac, SteeringRule.ip, SteeringRule.chain)
    .where(SteeringRule.node_name == _NODE, SteeringRule.desired.is_(True))
    .order_by(SteeringRule.user_name))
_Q_NODE_LIVENESS = sa.select(Node.name, Node.online, Node.last_seen).order_by(Node.name)
_Q_ON_NODES = (sa.select(VnfInstance.id, VnfInstance.node_name, VnfInstance.desired_state,
                         VnfInstance.actual_state)
               .where(VnfInstance.node_name.in_(sa.bindparam("nodes", expanding=True))))


def desired_state(s: Any, node: str) -> dict[str, Any]:
    """repo.desired_state_for_node, the same dict and revision, read as plain rows (no ORM
    objects): it runs for every push."""
    conn = s.connection()
    if conn.execute(_Q_NODE, {"node": node}).scalar() is None:
        raise NotFound(f"node {node!r} does not exist")
    instances = conn.execute(_Q_DESIRED_INSTANCES, {"node": node})
    rules = conn.execute(_Q_DESIRED_RULES, {"node": node})
    state: dict[str, Any] = {
        "node": node,
        "instances": [
            {"id": i.id, "nf_name": i.nf_name, "owner": i.owner,
             "bundle_sha256": i.bundle_sha256, "flavour": i.flavour, "config": i.config,
             "active_users": i.active_users}
            for i in instances
        ],
        "steering": [{"user": r.user_name, "mac": r.mac, "ip": r.ip, "chain": r.chain}
                     for r in rules],
    }
    canonical = json.dumps(state, sort_keys=True, separators=(",", ":"))
    state["revision"] = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return state


def _user_of(event: Event) -> str | None:
    """The one user an event is about; None for node-wide and global events."""
    if isinstance(event, UserAssociated | UserDisassociated | UserIdle):
        return event.user
    return None
