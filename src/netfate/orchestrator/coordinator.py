"""The NF coordinator [VNFM]: runs the engine's plans (and direct lifecycle requests) as
operation occurrences, through the agents, idempotently.

The database holds each node's desired state; an operation changes it and pushes it to the
node's agent, which converges and answers with its actual NFs. An agent that does not answer
in time fails the operation cleanly: its change to the desired state is rolled back, and
the node converges to that on its next registration or reconciliation.

Read, decide, act: the world is read through the database's async face, `planner` decides
the steps of each operation (pure), `executor` runs them; `pushes` sends desired states,
`telemetry` batches what agents report, `reconcile` converges periodically, `locks` orders
plans. This module ties them together: one plan at a time per user.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from netfate.bus.messages import Command, DesiredState, Reply
from netfate.counters import task_failures
from netfate.db import Database
from netfate.db.models import LcmOperation, OpState
from netfate.engine import (
    Event,
    Migrate,
    NodeDown,
    Place,
    Plan,
    Release,
    UserAssociated,
    UserDisassociated,
    UserIdle,
    get_policy,
)
from netfate.engine import plan as engine_plan
from netfate.errors import NetfateError
from netfate.metrics import orchestrator as metrics
from netfate.orchestrator import lcm_records as rec
from netfate.orchestrator import planner, snapshot
from netfate.orchestrator.access_subnet import AccessSubnet
from netfate.orchestrator.admission import Admission
from netfate.orchestrator.agents import AgentBus
from netfate.orchestrator.executor import Executor
from netfate.orchestrator.hub import EventHub
from netfate.orchestrator.plan_locks import PlanLocks
from netfate.orchestrator.pushes import Pushes
from netfate.orchestrator.reconcile import reconcile
from netfate.orchestrator.switches import Switches
from netfate.owners import OPERATOR

log = logging.getLogger("netfate.coordinator")

problem = rec.problem  # (kept importable from here)


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
        self.pushes = Pushes(db, bus, public_url)
        self.actual = self.pushes.actual
        self.executor = Executor(db, bus, hub, self.pushes, switches)
        # One plan at a time per user: a user event holds the gate shared and its user's lock
        # from planning to the end of the plan's run. A node-wide or global event (telemetry
        # re-evaluation, node up/down, reconcile) touches many users: it holds the gate
        # exclusively. Plans of different users run concurrently.
        self.locks = PlanLocks()  # with replicas: also PostgreSQL advisory locks
        self._tasks: set[asyncio.Task[None]] = set()
        # User events in flight, bounded for the API (graceful overload).
        self.admission = Admission()
        # Where users' devices get addresses (the settings' probe_subnet and probe_gateway):
        # an association at a node serving it must give one of its hosts (access_subnet).
        self.access_subnet: AccessSubnet | None = None

    # -- desired state -> agents ----------------------------------------------------------
    async def desired_for(self, node: str) -> tuple[DesiredState, dict[str, str]]:
        return await self.pushes.desired_for(node)

    def bundle_url(self, sha: str) -> str:
        return self.pushes.bundle_url(sha)

    async def apply_command(self, node: str) -> Command:
        return await self.pushes.apply_command(node)

    def changed(self, node: str) -> None:
        self.pushes.changed(node)

    async def push(self, node: str) -> Reply:
        return await self.pushes.push(node)

    async def push_if_changed(self, node: str) -> None:
        await self.pushes.push_if_changed(node)

    async def record_actual(self, node: str, reply: Reply) -> None:
        await self.actual.record_reply(node, reply)

    def observe(self, node: str, nfs: list[Any]) -> None:
        self.actual.observe(node, nfs)

    async def record_observed(self) -> None:
        await self.actual.record_observed()

    async def reconcile(self, node_timeout: float, now: float | None = None) -> dict[str, Any]:
        """Mark silent nodes offline; push desired state to nodes that differ from it. A
        node that has just gone offline (silent for over `node_timeout` s, the failover grace
        period) is a NodeDown for the engine: the NFs it hosted are placed again elsewhere,
        from their last checkpointed state where there is one, and their users steered to
        them (NetFATE section II; the GNF paper's DC fallback). What it did, as `reconcile`
        says, with "node_down": the plans started."""
        done = await reconcile(self.db, self.pushes, self.hub, node_timeout, now)
        for node in done["offline"]:
            log.warning("node %s silent for over %gs: placing its NFs again", node,
                        node_timeout)
            self.spawn(self.handle(NodeDown(node=node), background=False))
        return done

    # -- operations (direct lifecycle requests) --------------------------------------------
    async def new_op(self, op: LcmOperation, iid: str, params: dict[str, Any],
                     **checks: Any) -> str:
        """An operation occurrence, PROCESSING, if `checks` (lcm_records.claim_op's: free,
        present, not_present) still hold; Conflict or NotFound otherwise."""
        return await self.executor.claim_op(op, iid, params, **checks)

    async def finish_failed(self, op_id: str, title: str, exc: Exception,
                            rolled_back: bool) -> None:
        await self.executor.finish_failed(op_id, title, exc, rolled_back)

    async def instantiate(self, op_id: str, node: str, owner: str, nf: str, iid: str,
                          config: dict[str, Any] | None = None) -> bool:
        return await self.executor.run(planner.instantiate(op_id, node, owner, nf, iid,
                                                           config))

    async def terminate(self, op_id: str, iid: str) -> bool:
        facts = await self.db.run(rec.facts_of, [iid])
        f = facts.get(iid)
        return await self.executor.run(planner.terminate(op_id, iid, f.node if f else None))

    async def update(self, op_id: str, iid: str, config: dict[str, Any]) -> bool:
        f = await self.db.run(rec.instance_facts, iid)  # NotFound: the caller fails the op
        return await self.executor.run(planner.update(op_id, iid, f.node, f.config, config))

    async def migrate(self, op_id: str, iid: str, dst: str, new_iid: str,
                      deferred: list[str] | None = None) -> bool:
        """The operator's migration. Make before break: the NF comes up on dst, takes the
        state exported on the source, and only then is the source released (at the end of
        the plan when deferred). The new instance is pinned: the policy does not move it
        back while it can serve its user from dst."""
        f = await self.db.run(rec.instance_facts, iid)
        occ = planner.migrate(op_id, iid, f, dst, new_iid, deferred=deferred is not None,
                              pinned=True)
        return await self.executor.run(occ, deferred)

    async def as_owner(self, owner: str | None, work: Coroutine[Any, Any, bool]) -> bool:
        """Run a direct lifecycle operation on an NF of `owner` as one of their plans: after
        their plans in flight and before the next, so a roam or a repair never plans over an
        NF that is moving (it would see the new instance as a duplicate and release it)."""
        # An NF with no owner is the operator's: with replicas, a lock all the same, so the
        # leader's sweep of orphaned operations (orchestrator/orphans.py) sees it held.
        key = owner if owner is not None else OPERATOR
        try:
            await self.locks.acquire(key, False)
        except BaseException:
            work.close()
            raise
        try:
            return await work
        finally:
            self.locks.release(key, False)

    # -- plans ----------------------------------------------------------------------------
    def busy(self, user: str) -> bool:
        """A plan of `user` is being made or run (or waits to be)."""
        return self.locks.busy(user)

    async def plan_for(self, event: Event) -> Plan:
        """The policy's plan on the world as recorded: the event's part of it when the policy
        declares that is all it reads (snapshot.build_for), else all of it."""
        scoped = snapshot.scoped(self.policy)
        snap = await self.db.read(
            lambda s: snapshot.build_for(s, event) if scoped else snapshot.build(s))
        return engine_plan(snap, event, self.policy)

    async def open_ops(self, plan: Plan) -> list[str | None]:
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
        made = iter(await self.executor.new_ops(specs))
        ids: list[str | None] = [next(made) if slot else None for slot in slots]
        for u in plan.unplaced:
            op_id = await self.new_op(LcmOperation.INSTANTIATE, f"{u.user}-{u.nf}",
                                      {"owner": u.user, "nf": u.nf})
            await self.executor.op_state(op_id, OpState.FAILED,
                                         problem("no node can host the NF", u.reason, 409))
        return ids

    async def run_plan(self, plan: Plan, ops: list[str | None]) -> None:
        """Run a plan's steps in order. Sources of deferred migrations are released once
        the plan's last Steer has run (make-before-break: the user is steered to the new
        NFs first), side by side with the Unsteers after it, which do not depend on it:
        the old access node's flows and the old NF go at once, not one after the other.
        A migration's timings gain "switch" (its end to the last Steer's, ms) and
        "release" (from there to its source's release confirmed, ms)."""
        facts = await self.db.read(rec.facts_of, planner.touched(plan.intents))
        steps = planner.plan_steps(plan.intents, ops, facts)
        last_steer = max((k for k, s in enumerate(steps) if isinstance(s, planner.SteerStep)),
                         default=-1)
        deferred: list[str] = []
        failed: set[str] = set()  # users whose NF did not move: their steering stays as is
        moved: dict[str, float] = {}  # migrations' op ids -> when they completed
        releasing: asyncio.Future[list[None]] | None = None
        t_switched = 0.0
        for k, (it, step) in enumerate(zip(plan.intents, steps, strict=True)):
            try:
                if isinstance(step, planner.SteerStep | planner.UnsteerStep) \
                        and step.user in failed:
                    log.info("%s: steering at %s left as it was (an NF did not move)",
                             step.user, step.node)
                elif isinstance(step, planner.Occurrence):
                    if await self.executor.run(step, deferred):
                        if step.timings:
                            moved[step.op_id] = time.perf_counter()
                    elif step.holds_steering:
                        # Make-before-break failed: the source NF still runs and still
                        # serves the user (anchored there while they are elsewhere).
                        failed.add(step.holds_steering)
                elif isinstance(step, planner.SteerStep):
                    await self.executor.steer(step)
                elif isinstance(step, planner.UnsteerStep):
                    await self.executor.unsteer(step)
            except NetfateError as exc:  # refused with a reason: no traceback needed
                log.warning("intent %s failed: %s", it, exc)
            except Exception:
                log.exception("intent %s failed", it)
            if k == last_steer and deferred:
                t_switched = time.perf_counter()
                releasing = asyncio.gather(*(self.push_if_changed(n)
                                             for n in dict.fromkeys(deferred)))
        if releasing is not None:
            await releasing
        for node in dict.fromkeys(deferred):  # sources released after the new steering
            await self.push_if_changed(node)  # (an Unsteer there may have sent it already)
        if moved and t_switched:
            t_released = time.perf_counter()
            for op_id, t_done in moved.items():
                with contextlib.suppress(Exception):
                    await self.db.run(rec.add_timings, op_id, {
                        "switch_ms": round((t_switched - t_done) * 1000, 2),
                        "release_ms": round((t_released - t_switched) * 1000, 2)})

    async def handle(self, event: Event, background: bool = True,
                     record: Callable[[Session], object] | None = None,
                     after: asyncio.Event | None = None) -> PlanRun:
        """Plan for an event and run the plan: one plan at a time per user (a node-wide or
        global event waits for every running plan, and holds off new ones, until its own
        plan has run).

        The engine plans on the world as it was before the event; `record` (a function of a
        session, run in one transaction) then writes the event itself to the database (new
        readings, the user's new access node...). `after` (background only): the plan's run
        waits for it, holding the user's lock; associate sets it once the user's traffic is
        anchored, so the plan's NF start (namespaces, OVS ports: CPU and the switch's main
        thread) does not slow the controller rounds the user's packets wait on."""
        user = _user_of(event)
        exclusive = user is None
        entered = self.admission.enter() if user is not None else None
        try:
            await self.locks.acquire(user, exclusive)
        except BaseException:
            if user is not None:
                self.admission.leave()
            raise
        try:
            t0 = time.perf_counter()
            plan = await self.plan_for(event)
            metrics.placement(event, time.perf_counter() - t0)
            if record is not None:
                await self.db.run(record)
            ops = await self.open_ops(plan)
        except BaseException:
            self.locks.release(user, exclusive)
            if user is not None:
                self.admission.leave()
            raise
        run = PlanRun(plan, [o for o in ops if o])
        if plan.intents:
            self.hub.publish("plan", {"event": event.model_dump(mode="json"),
                                      "intents": [i.model_dump(mode="json")
                                                  for i in plan.intents]})
        coro = self._run_locked(plan, ops, user, exclusive, after, entered)
        if background:
            self.spawn(coro)
        else:
            await coro
        return run

    async def _run_locked(self, plan: Plan, ops: list[str | None], user: str | None,
                          exclusive: bool, after: asyncio.Event | None = None,
                          entered: float | None = None) -> None:
        """Run a plan, then let the next plan of its user (or anyone's, if exclusive) go.
        `entered`: when the admission counted its event in."""
        try:
            if after is not None:
                await after.wait()
            await self.run_plan(plan, ops)
        finally:
            self.locks.release(user, exclusive)
            if user is not None:
                self.admission.leave(entered)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(task_failures("coordinator", log))

    async def drain(self, timeout: float = 30.0) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)


def _user_of(event: Event) -> str | None:
    """The one user an event is about; None for node-wide and global events."""
    if isinstance(event, UserAssociated | UserDisassociated | UserIdle):
        return event.user
    return None
