"""Switch states with orchestrator replicas (issue #15): one publisher, the leader.

Every replica keeps a full `Switches` up to date from the bus (ports, stations seen, the
controller's confirmations), but only the leader publishes desired states: it alone numbers
generations and tracks anchors, so a state read before a change never overtakes one read
after it, whichever replica made the change. Another replica's publications are requests to
the leader on ``netfate.orchestrator.switches`` (request/reply); it waits for the
controller's confirmations itself, since every replica hears them.

A new leader publishes every state (forced), from generations above any it has seen
confirmed, as an orchestrator does when it starts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from netfate.bus import subjects
from netfate.bus.messages import SwitchAnswer, SwitchRequest
from netfate.errors import DriverError
from netfate.orchestrator.switches import Switches

log = logging.getLogger("netfate.switches")

ASK_TIMEOUT_S = 10.0    # one request to the leader
NO_LEADER_S = 10.0      # how long a request retries while no replica leads (a failover)


class RoutedSwitches(Switches):
    """`Switches` whose publications go through the leader when this replica does not
    lead. ``is_leader`` is read at each call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.is_leader = False
        self._sub: Any = None

    async def publish_many(self, nodes: Iterable[str], force: bool = False
                           ) -> dict[str, int | None]:
        """As `Switches.publish_many`, through the leader when this replica does not lead.
        A request the leader does not answer is not published here (generations None:
        nothing to wait for) and logged: states are level-triggered, a leader that got it
        publishes it, and a new leader publishes every state when it takes over."""
        nodes = list(dict.fromkeys(nodes))
        if self.is_leader:
            return await super().publish_many(nodes, force)
        try:
            ans = await self._ask(SwitchRequest(nodes=nodes))
        except DriverError as exc:
            log.warning("switch states %s not published: %s", nodes, exc)
            return dict.fromkeys(nodes)
        return {n: ans.generations.get(n) for n in nodes}

    async def publish_all(self, slice_size: int = 50) -> None:
        if self.is_leader:  # the others' states are the leader's to publish
            await super().publish_all(slice_size)

    async def _ask(self, req: SwitchRequest) -> SwitchAnswer:
        """The leader's answer. While no replica leads (no responders) it asks again for up
        to NO_LEADER_S; a leader that does not answer in ASK_TIMEOUT_S is not asked again
        (it may be busy with this very request: asking twice would double its work).
        DriverError then, or when the leader reports a failure."""
        deadline = time.monotonic() + NO_LEADER_S
        body = req.model_dump_json().encode()
        while True:
            if self.is_leader:  # became the leader meanwhile
                return SwitchAnswer(ok=True, generations=await super().publish_many(req.nodes))
            try:
                msg = await self.nc.request(subjects.ORCHESTRATOR_SWITCHES, body,
                                            timeout=ASK_TIMEOUT_S)
            except NoRespondersError as exc:
                if time.monotonic() > deadline:
                    raise DriverError(f"no orchestrator replica leads to publish switch "
                                      f"states {req.nodes}") from exc
                await asyncio.sleep(0.2)
                continue
            except NatsTimeout as exc:
                raise DriverError(f"the leader did not answer in {ASK_TIMEOUT_S:g} s") from exc
            ans = SwitchAnswer.model_validate_json(msg.data)
            if not ans.ok:
                raise DriverError(f"the leader could not publish them: {ans.error}")
            return ans

    # -- the leader's side ----------------------------------------------------------------
    async def lead(self) -> None:
        """Become the publisher: generations above any seen, answer the others' requests,
        publish every state."""
        seen = max((r.generation for r in self._synced.values()), default=0)
        self._gen = max(self._gen, seen, int(time.time() * 1000) & 0x7FFFFFFF) + 1
        self._published.clear()
        self.is_leader = True
        if self._sub is None:
            self._sub = await self.nc.subscribe(subjects.ORCHESTRATOR_SWITCHES,
                                                cb=self._serve)
        await self.publish_all()

    async def follow(self) -> None:
        self.is_leader = False
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def _serve(self, msg: Msg) -> None:
        try:
            req = SwitchRequest.model_validate_json(msg.data)
            if not self.is_leader:
                raise DriverError("this replica no longer leads")
            gens = await super().publish_many(req.nodes)
            ans = SwitchAnswer(ok=True, generations=gens)
        except Exception as exc:  # answered, never raised out of the bus callback
            ans = SwitchAnswer(ok=False, error=f"{type(exc).__name__}: {exc}"[:500])
        if msg.reply:
            with contextlib.suppress(Exception):
                await msg.respond(ans.model_dump_json().encode())
