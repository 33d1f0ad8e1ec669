"""What runs once in a deployment: reconciliation (with the level-triggered user repairs),
NF state checkpoints, and with replicas the sweep of operations a dead replica left
unfinished and the publishing of switch states. The only orchestrator runs them from its
start; among replicas (issue #15) the leader does, from when it takes the lead
(orchestrator/replica.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from netfate.counters import LoopFailures
from netfate.orchestrator import orphans

if TYPE_CHECKING:
    from netfate.orchestrator.service import Orchestrator

log = logging.getLogger("netfate.orchestrator")

# User repairs take at most 1/REPAIRS_SHARE of the wall-clock time (see reconcile_loop).
REPAIRS_SHARE = 20
REPAIRS_MAX_GAP_S = 30.0  # and run at least this often
ORPHAN_SWEEP_S = 1.0  # the leader looks for operations of dead replicas this often


class Singletons:
    def __init__(self, orch: Orchestrator) -> None:
        self.orch = orch
        self._tasks: list[asyncio.Task[None]] = []
        self._reconcile_failures = LoopFailures("reconcile", log)
        self._checkpoint_failures = LoopFailures("checkpoint", log)
        self._sweep_failures = LoopFailures("orphan-sweep", log)

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    def start(self, replicas: bool = False) -> None:
        """Run them here (idempotent); with replicas, the orphan sweep too."""
        if self._tasks:
            return
        self._tasks.append(asyncio.create_task(self.reconcile_loop()))
        if self.orch.settings.checkpoint_interval > 0:
            self._tasks.append(asyncio.create_task(self.checkpoint_loop()))
        if replicas:
            self._tasks.append(asyncio.create_task(self.sweep_loop()))

    def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        self._tasks = []

    async def on_leadership(self, leading: bool) -> None:
        """The replica took (or lost) the lead: run the singletons here (or not), and
        publish the switch states (or leave it to the new leader)."""
        from netfate.orchestrator.switches_routed import RoutedSwitches

        sw = self.orch.switches
        if leading:
            self.start(replicas=True)
            if isinstance(sw, RoutedSwitches):
                await sw.lead()
        else:
            self.stop()
            if isinstance(sw, RoutedSwitches):
                await sw.follow()

    async def reconcile_loop(self) -> None:
        orch = self.orch
        assert orch.coordinator is not None
        repairs_due = 0.0
        while True:
            await asyncio.sleep(orch.settings.reconcile_interval)
            try:
                await orch.coordinator.reconcile(orch.settings.node_timeout)
                if time.monotonic() >= repairs_due:  # events lost while a process was down
                    # It reads every user: at scale it runs less often (a backstop).
                    t0 = time.monotonic()
                    await orch.repairs.run()
                    repairs_due = t0 + min(REPAIRS_SHARE * (time.monotonic() - t0),
                                           REPAIRS_MAX_GAP_S)
                self._reconcile_failures.ok()
            except Exception as exc:
                self._reconcile_failures.failed("reconciling the nodes", exc)

    async def checkpoint_loop(self) -> None:
        """Export each running NF's state now and then (orchestrator/checkpoints.py): what a
        failover restores when the NF's node is gone."""
        orch = self.orch
        assert orch.coordinator is not None and orch.db is not None
        while True:
            await asyncio.sleep(orch.settings.checkpoint_interval)
            try:
                await orch.coordinator.executor.checkpoints.take(orch.db, orch.coordinator.bus)
                self._checkpoint_failures.ok()
            except Exception as exc:
                self._checkpoint_failures.failed("checkpointing the NFs' state", exc)

    async def sweep_loop(self) -> None:
        """End the operations dead replicas left unfinished (orchestrator/orphans.py), then
        repair their users at once (orchestrator/repair.py)."""
        orch = self.orch
        assert orch.replica is not None and orch.db is not None
        while True:
            try:
                if await orphans.sweep(orch.db, orch.replica.locks, orch.replica.incarnation):
                    # Their users planned afresh now, not at the next repair pass (up to
                    # REPAIRS_MAX_GAP_S away at scale): the failover's cost to them ends here.
                    await orch.repairs.run()
                await orphans.sweep_troubleshooting(
                    orch.db, orch.replica.locks,
                    lambda: orch.troubleshoots is not None and orch.troubleshoots.running)
                self._sweep_failures.ok()
            except Exception as exc:
                self._sweep_failures.failed("ending orphaned operations", exc)
            await asyncio.sleep(ORPHAN_SWEEP_S)
