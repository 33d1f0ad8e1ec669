"""The agent's telemetry and its commands' replies reach the orchestrator in the order of
what they describe: a NF list is read and sent under the commands' lock, so a list read
while a command creates an NF is never sent after that command's reply (it would record
the NF stopped over the reply's "running" until the next report)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from netfate.agent.service import Agent
from netfate.agent.telemetry import CpuMeter
from netfate.bus.messages import DesiredState, NFActual


class _Bus:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    async def publish(self, subject: str, data: bytes) -> None:
        self.sent.append((subject, json.loads(data)))


class _Agent(Agent):
    def __init__(self) -> None:  # no node, no drivers: one NF whose state the test sets
        self.name, self.budget, self.cpu = "cpe1", None, CpuMeter()
        self.desired, self.interval = DesiredState(), 0.01
        self._lock, self._stop, self._nc = asyncio.Lock(), asyncio.Event(), _Bus()
        self._telemetry_failures = _Failures()
        self.state = "created"

    def _actual(self) -> list[NFActual]:
        return [NFActual(instance_id="cpe1-u-firewall", nf_name="firewall", owner="u",
                         state=self.state, bundle_sha256="0" * 64)]


class _Failures:
    def ok(self) -> None: ...

    def failed(self, what: str, exc: BaseException) -> None:
        raise AssertionError(f"{what}: {exc!r}")


def test_no_nf_list_read_during_a_command_is_sent_after_its_reply() -> None:
    async def scenario() -> list[tuple[str, Any]]:
        agent = _Agent()
        async with agent._lock:  # a command runs: the NF is created, not yet started
            loop = asyncio.create_task(agent.telemetry_loop())
            await asyncio.sleep(0.05)
            assert agent._nc.sent == [], "telemetry sent while a command runs"
            agent.state = "running"
            await agent._nc.publish("reply", b'{"ok": true}')
        await asyncio.sleep(0.05)
        agent._stop.set()
        await loop
        return agent._nc.sent

    sent = asyncio.run(scenario())
    assert sent[0][0] == "reply"
    states = [nf["state"] for subject, msg in sent[1:] for nf in msg["nfs"]]
    assert states and set(states) == {"running"}, states
