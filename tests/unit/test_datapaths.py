"""Datapath settling as agents report it: orchestrator/datapaths.py and agent/settle.py."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from netfate.agent.settle import DatapathSettler
from netfate.bus import subjects
from netfate.bus.messages import DatapathSettled, SwitchSynced
from netfate.orchestrator.datapaths import Datapaths


def _rep(node: str, gen: int) -> DatapathSettled:
    return DatapathSettled(node=node, generation=gen, ts=0)


def test_a_generation_reported_before_or_during_the_wait_ends_it() -> None:
    async def main() -> None:
        d = Datapaths()
        d.report(_rep("core", 3))
        assert await d.wait({"core": 2}) == []  # already there: no wait
        asyncio.get_running_loop().call_later(0.02, d.report, _rep("core", 5))
        t0 = time.monotonic()
        assert await d.wait({"core": 5}, timeout=5) == []
        assert time.monotonic() - t0 < 1

    asyncio.run(main())


def test_nodes_never_reported_are_not_waited_for_and_late_ones_are_named() -> None:
    async def main() -> None:
        d = Datapaths()
        d.report(_rep("cpe1", 1))
        t0 = time.monotonic()
        short = await d.wait({"cpe2": 4, "cpe1": 2}, timeout=0.05)
        assert short == ["cpe1", "cpe2"]
        assert time.monotonic() - t0 < 1
        d.report(_rep("cpe1", 1))  # an older generation wakes no one, and nothing is left
        assert d.settled["cpe1"] == 1

    asyncio.run(main())


def test_an_earlier_generation_does_not_end_a_wait_for_a_later_one() -> None:
    async def main() -> None:
        d = Datapaths()
        d.report(_rep("core", 1))
        task = asyncio.create_task(d.wait({"core": 3}, timeout=5))
        await asyncio.sleep(0.01)
        d.report(_rep("core", 2))
        await asyncio.sleep(0.01)
        assert not task.done()
        d.report(_rep("core", 3))
        assert await task == []

    asyncio.run(main())


@dataclass
class _Msg:
    data: bytes


def test_the_agent_purges_only_when_flows_changed_and_reports_in_order() -> None:
    purged: list[float] = []
    sent: list[tuple[str, dict[str, object]]] = []

    def purge() -> None:
        time.sleep(0.02)
        purged.append(time.monotonic())

    async def publish(subject: str, data: bytes) -> None:
        sent.append((subject, json.loads(data)))

    async def main() -> None:
        s = DatapathSettler("cpe1", purge, publish)
        changed = SwitchSynced(node="cpe1", generation=4, added=2, deleted=0, unchanged=3,
                               ts=0).model_dump_json().encode()
        same = SwitchSynced(node="cpe1", generation=5, added=0, deleted=0, unchanged=5,
                            ts=0).model_dump_json().encode()
        # the second (no change) must not be reported before the first's purge is done
        await asyncio.gather(s.on_synced(_Msg(changed)), s.on_synced(_Msg(same)))  # type: ignore[arg-type]
        await s.on_synced(_Msg(b"{not json"))  # type: ignore[arg-type]

    asyncio.run(main())
    assert len(purged) == 1
    assert [(sub, m["generation"]) for sub, m in sent] == [
        (subjects.datapath_settled("cpe1"), 4), (subjects.datapath_settled("cpe1"), 5)]
