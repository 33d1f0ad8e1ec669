"""Pushes to one node: a push that waited behind one that carried every change already
sends nothing (the closed loop's reactions on one node: one agent command)."""

from __future__ import annotations

import asyncio
from typing import Any

from netfate.bus.messages import Command, Reply
from netfate.orchestrator.pushes import Pushes


class FakeBus:
    def __init__(self) -> None:
        self.sent = 0

    async def command(self, node: str, cmd: Command) -> Reply:
        self.sent += 1
        await asyncio.sleep(0.01)
        return Reply(ok=True)


def pushes(bus: FakeBus) -> Pushes:
    p = Pushes(db=None, bus=bus, public_url="http://x")  # type: ignore[arg-type]

    async def apply_command(node: str) -> Command:
        return Command(op="ping")

    async def record(node: str, reply: Reply) -> None:
        return None

    p.apply_command = apply_command  # type: ignore[method-assign]
    p.actual.record_reply = record  # type: ignore[method-assign]
    return p


def test_pushes_behind_one_that_sent_every_change_send_nothing() -> None:
    bus = FakeBus()
    p = pushes(bus)

    async def go() -> list[Any]:
        p.changed("cpe1")
        p.changed("cpe1")  # two reactions' configs, then both push
        return await asyncio.gather(p.push("cpe1"), p.push("cpe1"))

    replies = asyncio.run(go())
    assert bus.sent == 1 and all(r.ok for r in replies)


def test_a_change_after_the_first_push_read_its_state_is_pushed_again() -> None:
    bus = FakeBus()
    p = pushes(bus)

    async def go() -> None:
        p.changed("cpe1")
        first = asyncio.create_task(p.push("cpe1"))
        await asyncio.sleep(0.001)  # the first push is under way
        p.changed("cpe1")
        await asyncio.gather(first, p.push("cpe1"))
        await p.push("cpe1")  # nothing waited: sent again (a caller that wants it fresh)

    asyncio.run(go())
    assert bus.sent == 3
