"""The orchestrator's commands survive a NATS member's death (issue #15): a command whose
connection drops while it waits is sent again (idempotent ones only), and a "no responders"
answer, an agent still moving to another member, is retried for a short grace."""

from __future__ import annotations

import asyncio
from typing import Any

import nats.errors
import pytest

from netfate.bus.messages import Command, Reply
from netfate.orchestrator.agents import AgentBus, AgentUnreachable, Disconnects


class Msg:
    def __init__(self, data: bytes) -> None:
        self.data = data


class FakeNc:
    """request(): answers per a script: "hang", "noresp", or "ok"."""

    def __init__(self, script: list[str]) -> None:
        self.script = script
        self.sent = 0

    async def request(self, _subject: str, _data: bytes, timeout: float) -> Any:
        what = self.script[min(self.sent, len(self.script) - 1)]
        self.sent += 1
        if what == "noresp":
            raise nats.errors.NoRespondersError
        if what == "hang":
            await asyncio.sleep(timeout)
            raise nats.errors.TimeoutError
        return Msg(Reply(ok=True).model_dump_json().encode())


async def _dropped_mid_command(deadline: float, node: str, cmd: Command
                               ) -> tuple[asyncio.Task[Reply], FakeNc]:
    """`cmd` sent to `node` (answered on the second try), then, while it waits, the
    connection drops: the command's task, and the fake connection (counting what it sent)."""
    d = Disconnects()
    nc = FakeNc(["hang", "ok"])
    bus = AgentBus(nc, deadline, d)
    task = asyncio.create_task(bus.command(node, cmd))
    await asyncio.sleep(0.1)
    await d.lost()
    return task, nc


def test_a_command_in_flight_is_sent_again_when_the_connection_drops() -> None:
    async def go() -> tuple[Reply, int]:
        task, nc = await _dropped_mid_command(5.0, "cpe1", Command(op="apply"))
        return await asyncio.wait_for(task, 2), nc.sent

    reply, sent = asyncio.run(go())
    assert reply.ok and sent == 2


def test_a_live_migration_step_is_not_sent_twice() -> None:
    async def go() -> int:
        task, nc = await _dropped_mid_command(0.5, "dc", Command(op="migrate_out"))
        with pytest.raises(AgentUnreachable, match="did not answer"):
            await task
        return nc.sent

    assert asyncio.run(go()) == 1


def test_no_responders_is_retried_briefly_then_reported() -> None:
    nc = FakeNc(["noresp", "noresp", "ok"])
    reply = asyncio.run(AgentBus(nc, 5.0).command("cpe1", Command(op="ping")))
    assert reply.ok and nc.sent == 3
    gone = FakeNc(["noresp"])
    with pytest.raises(AgentUnreachable, match="no agent of node cpe1 is connected"):
        asyncio.run(AgentBus(gone, 5.0).command("cpe1", Command(op="ping")))
    assert 2 <= gone.sent <= 12  # retried within the grace (~2 s), not for the deadline
