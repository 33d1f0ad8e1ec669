"""Desired state -> agents: each node's desired state (repo.desired_state_for_node) sent to
its agent, whose reply (its actual NFs) is recorded. Pushes to one node are serialised; a
push that would send nothing new is skipped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from netfate.bus.messages import Command, DesiredState, InstanceSpec, Reply
from netfate.db import Database, repo
from netfate.errors import NetfateError
from netfate.orchestrator.agents import AgentBus
from netfate.orchestrator.telemetry import ActualStates


class Pushes:
    def __init__(self, db: Database, bus: AgentBus, public_url: str) -> None:
        self.db = db
        self.bus = bus
        self.public_url = public_url
        self.actual = ActualStates(db, self.changes)
        self._locks: dict[str, asyncio.Lock] = {}
        # Per node: changes made to its desired state, and the change count its agent was
        # last sent (to skip a push that would send nothing new).
        self._changes: dict[str, int] = {}
        self._sent: dict[str, int] = {}
        # Per node: pushes completed, and the last one's reply.
        self._done: dict[str, int] = {}
        self._last: dict[str, Reply] = {}
        # sha256 -> the key that opens its content URL without the operator token
        # (netfate.api_auth.bundle_key); None: plain URLs.
        self.bundle_key: Callable[[str], str] | None = None

    def changes(self, node: str) -> int:
        return self._changes.get(node, 0)

    def changed(self, node: str) -> None:
        """The coordinator changed `node`'s desired state (its agent must be sent it)."""
        self._changes[node] = self._changes.get(node, 0) + 1

    def busy(self, node: str) -> bool:
        """A push to `node` is in flight (it sends the desired state current at its turn)."""
        lock = self._locks.get(node)
        return lock is not None and lock.locked()

    def bundle_url(self, sha: str) -> str:
        url = f"{self.public_url}/api/v1/vnf_packages/{sha}/content"
        return url if self.bundle_key is None else f"{url}?key={self.bundle_key(sha)}"

    async def desired_for(self, node: str) -> tuple[DesiredState, dict[str, str]]:
        """The node's desired state as the agent takes it, and its bundles' URLs. Raises
        NotFound for an unknown node."""
        d = await self.db.read(repo.desired_state_for_node, node)  # no write lock: it only reads
        instances = [
            InstanceSpec(instance_id=i["id"], nf_name=i["nf_name"], owner=i["owner"],
                         bundle_sha256=i["bundle_sha256"], config=i["config"] or {},
                         flavour=i["flavour"])
            for i in d["instances"]
        ]
        bundles = {i.bundle_sha256: self.bundle_url(i.bundle_sha256) for i in instances}
        gen = int(d["revision"], 16) & 0x7FFFFFFF
        return DesiredState(generation=gen, instances=instances), bundles

    async def apply_command(self, node: str) -> Command:
        desired, bundles = await self.desired_for(node)
        return Command(op="apply", desired=desired, bundles=bundles)

    async def push(self, node: str) -> Reply:
        """Send the node its desired state; record what it reports. Pushes to one node are
        serialised, each sending the desired state as it is when its turn comes, and its
        reply is recorded before the next push starts. Raises AgentUnreachable (no answer
        in time) or another NetfateError."""
        lock = self._locks.setdefault(node, asyncio.Lock())
        done_before = self._done.get(node, 0)
        async with lock:
            seen = self._changes.get(node, 0)
            last = self._last.get(node)
            # A push that waited behind one that already carried every change made so far
            # (this caller's included: it changed before it called) has nothing to send:
            # its reply is that push's (several reactions on one node: one agent command).
            if (last is not None and self._done.get(node, 0) > done_before
                    and self._sent.get(node, -1) >= seen):
                return last
            reply = await self.bus.command(node, await self.apply_command(node))
            self._sent[node] = max(self._sent.get(node, 0), seen)
            await self.actual.record_reply(node, reply)
            self._last[node] = reply
            self._done[node] = self._done.get(node, 0) + 1
        return reply

    async def push_if_changed(self, node: str) -> None:
        """Push unless the agent was already sent every change the coordinator made."""
        if self._sent.get(node, -1) >= self._changes.get(node, 0):
            return
        with contextlib.suppress(NetfateError):
            await self.push(node)
