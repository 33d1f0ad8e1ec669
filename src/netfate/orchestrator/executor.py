"""The coordinator's executor: runs the planner's steps (desired-state writes through the
database's async face, pushes to agents, state moves, steering through the controller) and
records each operation occurrence's states. It decides nothing the planner did not."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from netfate.bus.messages import Command, Reply
from netfate.db import Database
from netfate.db.models import LcmOperation, OpState
from netfate.errors import NetfateError, NotFound
from netfate.orchestrator import lcm_records as rec
from netfate.orchestrator.agents import AgentBus, AgentRefused, AgentUnreachable, op_status
from netfate.orchestrator.checkpoints import Checkpoints
from netfate.orchestrator.hub import EventHub
from netfate.orchestrator.orphans import RUNNER
from netfate.orchestrator.planner import (
    Configure,
    Drop,
    Fail,
    MoveState,
    Occurrence,
    Push,
    ReleaseSource,
    RestoreState,
    Retract,
    SteerStep,
    Step,
    UnsteerStep,
    Want,
)
from netfate.orchestrator.pushes import Pushes
from netfate.orchestrator.switches import Switches

log = logging.getLogger("netfate.coordinator")


LIVE_TIMEOUT = 150.0  # s for a live migration's migrate_out (QEMU gives up at 120 s)


class _Laps:
    """Milliseconds between laps, by name ("instantiate_ms"...)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[f"{name}_ms"] = round((now - self._t) * 1000, 2)
        self._t = now


class Executor:
    def __init__(self, db: Database, bus: AgentBus, hub: EventHub, pushes: Pushes,
                 switches: Switches | None = None) -> None:
        self.db = db
        self.bus = bus
        self.hub = hub
        self.pushes = pushes
        self.switches = switches
        self.checkpoints = Checkpoints()  # each instance's last exported state
        self.runner: str | None = None  # with replicas: this one's incarnation

    # -- operation occurrences ------------------------------------------------------------
    async def new_ops(self, specs: list[tuple[LcmOperation, str, dict[str, Any]]]
                      ) -> list[str]:
        """Operation occurrences, PROCESSING, in one transaction; their ids."""
        if not specs:
            return []
        if self.runner is not None:  # the replica running them (orchestrator/orphans.py)
            specs = [(op, iid, {**params, RUNNER: self.runner}) for op, iid, params in specs]
        ids = await self.db.run(rec.new_ops, specs)
        for op_id, (op, iid, _) in zip(ids, specs, strict=True):
            self.hub.publish("op", {"id": op_id, "operation": op.value,
                                    "vnf_instance_id": iid, "state": "PROCESSING"})
        return ids

    async def claim_op(self, op: LcmOperation, iid: str, params: dict[str, Any],
                       **checks: Any) -> str:
        """One operation occurrence, PROCESSING, if lcm_records.claim_op's `checks` still
        hold (Conflict, NotFound otherwise); its id."""
        if self.runner is not None:
            params = {**params, RUNNER: self.runner}
        op_id = await self.db.run(rec.claim_op, op, iid, params, **checks)
        self.hub.publish("op", {"id": op_id, "operation": op.value,
                                "vnf_instance_id": iid, "state": "PROCESSING"})
        return op_id

    async def op_state(self, op_id: str, state: OpState,
                       error: dict[str, Any] | None = None) -> None:
        self.hub.publish("op", await self.db.run(rec.set_op_state, op_id, state, error))

    async def finish_failed(self, op_id: str, title: str, exc: Exception,
                            rolled_back: bool) -> None:
        err = rec.problem(title, str(exc), op_status(exc))
        if rolled_back:
            await self.op_state(op_id, OpState.ROLLING_BACK, err)
            await self.op_state(op_id, OpState.ROLLED_BACK, err)
        else:
            await self.op_state(op_id, OpState.FAILED, err)

    async def run(self, occ: Occurrence, deferred: list[str] | None = None) -> bool:
        """Run an occurrence's steps; on failure its undo steps, then FAILED/ROLLED_BACK;
        on success its commit steps (a deferred source release is appended to `deferred`),
        then COMPLETED. Whether it completed."""
        laps = _Laps()
        moved: dict[str, Any] = {}
        try:
            for step in occ.steps:
                await self._do(step, laps, moved)
        except Exception as exc:
            silent = exc.node if isinstance(exc, AgentUnreachable) else None
            for step in occ.undo:
                if isinstance(step, Retract):
                    if step.node != silent:  # if it is, its next sync undoes it
                        with contextlib.suppress(NetfateError):
                            await self.pushes.push(step.node)
                else:
                    await self._do(step, laps, moved)
            await self.finish_failed(occ.op_id, occ.title, exc, occ.rolled_back)
            return False
        for step in occ.commit:
            if isinstance(step, ReleaseSource):
                if step.deferred and deferred is not None:
                    deferred.append(step.node)
                else:
                    with contextlib.suppress(NetfateError):
                        await self.pushes.push(step.node)
            else:
                await self._do(step, laps, moved)
        # COMPLETED, with the laps measured (a migration's) added to its params, in one
        # transaction.
        self.hub.publish("op", await self.db.run(
            rec.complete, occ.op_id, laps.timings if occ.timings else None))
        return True

    async def _do(self, step: Step, laps: _Laps, moved: dict[str, Any]) -> None:
        match step:
            case Want():
                await self.db.run(rec.want, step.node, step.owner, step.nf, step.iid,
                                  step.config, step.flavour, step.pinned)
                self.pushes.changed(step.node)
            case Drop():
                node = await self.db.run(rec.drop, step.iid, step.owner, step.nf)
                if node is not None:
                    self.pushes.changed(node)
            case Configure():
                self.pushes.changed(await self.db.run(rec.configure, step.iid, step.config))
            case Push():
                _check(step, await self.pushes.push(step.node))
                if step.lap:
                    laps.lap(step.lap)
            case MoveState():
                if step.live and await self._live_move(step, laps, moved):
                    return
                exported = await self.bus.command(step.src, Command(op="export_state",
                                                                    instance_id=step.iid))
                if not exported.ok:
                    raise AgentRefused(f"export on {step.src}: {exported.error}",
                                       exported.status)
                laps.lap("export")
                self.checkpoints.put(step.iid, exported.data)
                imported = await self.bus.command(step.dst, Command(
                    op="import_state", instance_id=step.new_iid, state=exported.data))
                if not imported.ok:
                    raise AgentRefused(f"import on {step.dst}: {imported.error}",
                                       imported.status)
                laps.lap("import")
                self.checkpoints.put(step.new_iid, exported.data)
            case RestoreState():
                await self._restore(step)
                laps.lap("restore")
            case Retract() | ReleaseSource():
                with contextlib.suppress(NetfateError):
                    await self.pushes.push(step.node)
            case Fail():
                raise NotFound(step.reason)

    async def _restore(self, step: RestoreState) -> None:
        """Best effort: a failed import leaves the NF running afresh (serving the user
        without their old state beats not serving them)."""
        cp = self.checkpoints.get(step.iid)
        if cp is None:
            log.warning("%s: no checkpoint of %s, starting afresh", step.new_iid, step.iid)
            return
        try:
            reply = await self.bus.command(step.dst, Command(
                op="import_state", instance_id=step.new_iid, state=cp.state))
        except NetfateError as exc:
            log.warning("%s: restoring %s's checkpoint failed: %s", step.new_iid, step.iid, exc)
            return
        if not reply.ok:
            log.warning("%s: restoring %s's checkpoint failed: %s", step.new_iid, step.iid,
                        reply.error)
            return
        self.checkpoints.put(step.new_iid, cp.state, cp.at)
        log.info("%s: restored the state %s exported at %.3f", step.new_iid, step.iid, cp.at)

    async def _live_move(self, step: MoveState, laps: _Laps, moved: dict[str, Any]) -> bool:
        """Move a VM NF by live migration when both ends can (their drivers' capability
        `live_migrate`: netfate.agent.live_migration): the running guest, with its rules and
        conntrack entries, goes to the QEMU the target made; the steering switches after it
        resumes (the plan's next steps), make-before-break as NetFATE's Xen migration. False
        when either end can't: the state then moves by export/import. NetfateError if the
        migration itself fails (the source runs on; the occurrence's undo drops the target).
        Laps "prepare" and "live-migrate"; QEMU's figures in `moved["live"]`."""
        spec = await self.bus.command(step.src, Command(op="migrate_spec", instance_id=step.iid))
        if not spec.ok or not spec.data.get("live_migrate"):
            return False
        prep = await self.bus.command(step.dst, Command(
            op="migrate_in", instance_id=step.new_iid, state=spec.data))
        uri = prep.data.get("uri") if prep.ok else None
        if not isinstance(uri, str):
            return False
        laps.lap("prepare")
        out = await self.bus.command(step.src, Command(
            op="migrate_out", instance_id=step.iid, state={"uri": uri}), timeout=LIVE_TIMEOUT)
        if not out.ok:
            raise AgentRefused(f"live migration from {step.src}: {out.error}", out.status)
        laps.lap("live-migrate")
        done = await self.bus.command(step.dst, Command(
            op="migrate_finish", instance_id=step.new_iid,
            state={"state": spec.data.get("state", "running")}))
        if not done.ok:
            raise AgentRefused(f"live migration to {step.dst}: {done.error}", done.status)
        moved["live"] = out.data
        return True

    # -- steering ---------------------------------------------------------------------------
    async def steer(self, s: SteerStep) -> None:
        """The controller steers: publish the switches' new states and wait for the flows."""
        # A shared NF learns its new tenant (its VLAN) before their traffic comes tagged.
        await self._retenant(await self.db.run(rec.steer, s.user, s.node, list(s.chain),
                                               s.mac, s.ip))
        await self._installed(s.user, s.node, True)

    async def unsteer(self, s: UnsteerStep) -> None:
        nodes = await self.db.run(rec.unsteer, s.user, s.node)
        await self._installed(s.user, s.node, False)
        await self._retenant(nodes)

    async def _retenant(self, nodes: list[str]) -> None:
        """Send nodes whose shared NFs' tenants changed their desired state (best effort:
        an unreachable agent gets it at its next push or re-sync)."""
        for node in nodes:
            self.pushes.changed(node)
            await self.pushes.push_if_changed(node)

    async def _installed(self, user: str, node: str, installed: bool) -> None:
        if self.switches is None:
            return
        reports = await self.switches.apply(node)
        if any(r.node == node and not r.errors for r in reports):
            with contextlib.suppress(NetfateError):
                await self.db.run(rec.mark_installed, user, node, installed)


def _check(step: Push, reply: Reply) -> None:
    """Raise NetfateError unless the reply shows what the push expected, with the step's
    own instance's error (another tenant's NF on the node may have failed in the same
    apply: its error is not this operation's to record)."""
    own = reply.errors.get(step.iid) if reply.errors else reply.error
    status = reply.statuses.get(step.iid) if reply.errors else reply.status
    if step.expect == "running":
        if not any(n.instance_id == step.iid and n.state == "running" for n in reply.nfs):
            raise AgentRefused(own or f"{step.iid} did not come up on {step.node}", status)
    elif step.expect == "gone":
        if any(n.instance_id == step.iid for n in reply.nfs):
            raise AgentRefused(own or f"{step.iid} is still on {step.node}", status)
    elif not reply.ok and (own or not reply.errors):
        raise AgentRefused(own or "update failed", status)
