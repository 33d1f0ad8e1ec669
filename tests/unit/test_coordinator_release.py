"""A roam's plan (migrate, steer at the new node, unsteer at the old one): the source NF is
released only once the new steering has run (make-before-break), and side by side with the
unsteer after it, not after it; the migration's timings say how long each took."""

from __future__ import annotations

import asyncio
from typing import Any

from netfate.bus.messages import Command, Reply
from netfate.db import Database, repo
from netfate.db.models import LcmOperation
from netfate.engine import Migrate, Plan, Steer, Unsteer
from netfate.orchestrator import planner
from netfate.orchestrator.coordinator import Coordinator
from netfate.orchestrator.hub import EventHub

from .test_executor import FakeBus, _placed, converge, db  # noqa: F401 (the fixture)


def _roam(database: Database, unsteer_s: float = 0.05, steer_fails: bool = False
          ) -> tuple[list[str], dict[str, Any]]:
    """Run the roam's plan; what happened, in order, and the migration's params."""
    _placed(database)
    events: list[str] = []
    bus = FakeBus()

    def cpe1(cmd: Command, nodes: list[str]) -> Reply:
        if cmd.op == "apply":
            events.append("release cpe1")
        return converge(cmd, nodes)

    bus.agents["cpe1"] = cpe1

    async def go() -> dict[str, Any]:
        c = Coordinator(database, bus, EventHub(), "http://x")  # type: ignore[arg-type]

        async def steer(s: planner.SteerStep) -> None:
            events.append(f"steer {s.node}")
            if steer_fails:
                raise RuntimeError("the controller did not confirm")

        async def unsteer(s: planner.UnsteerStep) -> None:
            events.append(f"unsteer {s.node} start")
            await asyncio.sleep(unsteer_s)
            events.append(f"unsteer {s.node} end")

        c.executor.steer = steer  # type: ignore[method-assign]
        c.executor.unsteer = unsteer  # type: ignore[method-assign]
        plan = Plan(intents=(
            Migrate(user="user1", nf="firewall", instance_id="i1", src="cpe1", dst="cpe2",
                    new_instance_id="i2"),
            Steer(user="user1", node="cpe2", chain=("i2",)),
            Unsteer(user="user1", node="cpe1")))
        ops = await c.open_ops(plan)
        await c.run_plan(plan, ops)
        op_id = ops[0]
        assert op_id is not None
        with database.session() as s:
            occ = repo.get_op_occ(s, op_id)
            assert occ.operation == LcmOperation.MIGRATE
            return dict(occ.params or {})

    return events, asyncio.run(go())


def test_the_source_goes_after_the_new_steering_alongside_the_old_nodes_unsteer(
        db: Database) -> None:  # noqa: F811 (the fixture)
    events, params = _roam(db)
    assert events[0] == "steer cpe2"  # make-before-break: steered first
    assert events.index("release cpe1") < events.index("unsteer cpe1 end")
    assert events.count("release cpe1") == 1
    timings = params["timings"]
    assert {"instantiate_ms", "export_ms", "import_ms", "switch_ms",
            "release_ms"} <= set(timings)
    assert all(v >= 0 for v in timings.values())


def test_a_failed_steer_still_releases_the_source_after_it_as_before(
        db: Database) -> None:  # noqa: F811 (the fixture)
    events, _ = _roam(db, steer_fails=True)
    assert events[0] == "steer cpe2"
    assert events.count("release cpe1") == 1
