"""The orchestrator's side of the bus: commands to agents, with a deadline."""

from __future__ import annotations

import time
from typing import Any

from pydantic import ValidationError

from netfate.bus import subjects
from netfate.bus.messages import Command, Reply
from netfate.errors import NetfateError
from netfate.metrics import orchestrator as metrics


def refusal(reason: str) -> Reply:
    """The answer to a registration the orchestrator cannot take: a Reply with ok false and
    the reason (the agent logs it and retries with backoff; see agent/registration.py)."""
    return Reply(ok=False, error=reason)


class AgentUnreachable(NetfateError):
    """The agent did not answer in time (or no agent of that node is connected)."""

    def __init__(self, node: str, message: str) -> None:
        super().__init__(message)
        self.node = node


class AgentBadReply(NetfateError):
    """The agent answered with something that is not a Reply."""

    def __init__(self, node: str, message: str) -> None:
        super().__init__(message)
        self.node = node


class AgentBus:
    def __init__(self, nc: Any, timeout: float) -> None:
        self.nc = nc
        self.timeout = timeout

    async def command(self, node: str, cmd: Command, timeout: float | None = None) -> Reply:
        """The agent's reply. Every failure is a NetfateError naming the node: callers undo
        and record it, and nothing else escapes to leave an operation half-done."""
        t0 = time.perf_counter()
        outcome = "unreachable"
        try:
            reply = await self._command(node, cmd, timeout)
            outcome = "ok" if reply.ok else "error"
            return reply
        except AgentBadReply:
            outcome = "bad_reply"
            raise
        finally:
            metrics.agent_command(node, cmd.op, outcome, time.perf_counter() - t0)

    async def _command(self, node: str, cmd: Command, timeout: float | None) -> Reply:
        import nats.errors

        t = timeout or self.timeout
        try:
            msg = await self.nc.request(subjects.command(node), cmd.model_dump_json().encode(),
                                        timeout=t)
        except nats.errors.NoRespondersError:
            raise AgentUnreachable(node, f"no agent of node {node} is connected") from None
        except (nats.errors.TimeoutError, TimeoutError):
            raise AgentUnreachable(
                node, f"the agent of node {node} did not answer in {t:g}s") from None
        except nats.errors.Error as exc:  # connection closed or draining, at shutdown
            raise AgentUnreachable(
                node, f"no command to node {node}: the bus is unavailable ({exc})") from None
        try:
            return Reply.model_validate_json(msg.data)
        except ValidationError as exc:
            first = exc.errors()[0] if exc.errors() else {"msg": str(exc)}
            raise AgentBadReply(node, f"the agent of node {node} sent an invalid reply to "
                                      f"{cmd.op}: {first.get('msg')}") from None
