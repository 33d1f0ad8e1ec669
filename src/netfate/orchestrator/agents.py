"""The orchestrator's side of the bus: commands to agents, with a deadline."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import ValidationError

from netfate.bus import subjects
from netfate.bus.messages import Command, Reply
from netfate.errors import NetfateError, http_status
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


class AgentRefused(NetfateError):
    """The agent answered that it could not do it: ``status`` is the HTTP status it gave
    (Reply.statuses / Reply.status: 422 for input it refused, 409 for a capability it
    lacks), 500 when it gave none (a failure of the node, or an agent of before)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status if status is not None and 400 <= status <= 599 else 500


class AgentBadReply(NetfateError):
    """The agent answered with something that is not a Reply."""

    def __init__(self, node: str, message: str) -> None:
        super().__init__(message)
        self.node = node


def op_status(exc: BaseException) -> int:
    """The HTTP status an operation failed by ``exc`` records in its error (ETSI SOL003
    ProblemDetails): the agent's own for a refusal, 504 when the agent did not answer, 502
    when its answer was not a Reply, else by the error's kind (errors.http_status; 500 for a
    failure of the platform)."""
    if isinstance(exc, AgentRefused):
        return exc.status
    if isinstance(exc, AgentUnreachable):
        return 504
    if isinstance(exc, AgentBadReply):
        return 502
    return http_status(exc)


# An agent whose NATS member died is reconnecting to another (reconnect_time_wait 0.5 s):
# for this long a "no responders" answer is retried, since no agent received the command.
NO_RESPONDERS_GRACE_S = 2.0
# Commands an agent may receive twice with the same outcome (desired state, reads, a state
# import that replaces): sent again when the bus connection drops while they wait. A live
# migration's steps are not: they wait for their reply or their deadline.
RESENDABLE = frozenset({"apply", "export_state", "import_state", "status", "nf_status", "ping"})


class Disconnects:
    """Counts the bus connection's losses (nats-py's ``disconnected_cb``). A command in flight
    when the connection drops may have lost its request or its reply with the NATS member
    that died, so it is sent again (agents' commands are idempotent: the compute contract
    suite checks create/start/stop/update/pause/delete twice)."""

    def __init__(self) -> None:
        self.count = 0
        self._event = asyncio.Event()

    async def lost(self) -> None:
        """The disconnected callback: wake the commands in flight."""
        self.count += 1
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self) -> None:
        await self._event.wait()


class AgentBus:
    def __init__(self, nc: Any, timeout: float, disconnects: Disconnects | None = None) -> None:
        self.nc = nc
        self.timeout = timeout
        self.disconnects = disconnects or Disconnects()

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
        deadline = time.monotonic() + t
        # At most a quarter of the deadline: an agent that is simply gone still fails fast.
        grace = time.monotonic() + min(NO_RESPONDERS_GRACE_S, t / 4)
        pause = 0.05
        while True:
            try:
                msg = await self._request(node, cmd, max(0.05, deadline - time.monotonic()))
                if msg is None:  # the connection dropped while waiting: send it again
                    continue
                break
            except nats.errors.NoRespondersError:
                # Not delivered to any agent, so safe to send again: the node's agent may be
                # moving to another member of a NATS cluster (issue #15).
                if time.monotonic() + pause >= grace:
                    raise AgentUnreachable(
                        node, f"no agent of node {node} is connected") from None
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.4)
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

    async def _request(self, node: str, cmd: Command, timeout: float) -> Any:
        """The agent's reply message, or None if the bus connection dropped before it came
        (errors of the request itself are raised)."""
        req = asyncio.ensure_future(self.nc.request(
            subjects.command(node), cmd.model_dump_json().encode(), timeout=timeout))
        if cmd.op not in RESENDABLE:
            return await req
        lost = asyncio.ensure_future(self.disconnects.wait())
        try:
            await asyncio.wait({req, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if req.done():
            return req.result()
        if getattr(self.nc, "is_closed", False) or getattr(self.nc, "is_draining", False):
            return await req  # shutting down, not failing over: nothing to send again
        req.cancel()
        await asyncio.gather(req, return_exceptions=True)
        return None
