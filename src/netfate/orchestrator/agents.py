"""The orchestrator's side of the bus: commands to agents, with a deadline."""

from __future__ import annotations

from typing import Any

from netfate.bus import subjects
from netfate.bus.messages import Command, Reply
from netfate.errors import NetfateError


class AgentUnreachable(NetfateError):
    """The agent did not answer in time (or no agent of that node is connected)."""


class AgentBus:
    def __init__(self, nc: Any, timeout: float) -> None:
        self.nc = nc
        self.timeout = timeout

    async def command(self, node: str, cmd: Command, timeout: float | None = None) -> Reply:
        import nats.errors

        t = timeout or self.timeout
        try:
            msg = await self.nc.request(subjects.command(node), cmd.model_dump_json().encode(),
                                        timeout=t)
        except nats.errors.NoRespondersError:
            raise AgentUnreachable(f"no agent of node {node} is connected") from None
        except (nats.errors.TimeoutError, TimeoutError):
            raise AgentUnreachable(f"the agent of node {node} did not answer in {t:g}s") from None
        return Reply.model_validate_json(msg.data)
