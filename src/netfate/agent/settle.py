"""Making the datapath forward by the controller's new flows, and saying so.

After the controller's barrier the switch's flow table has changed, but its userspace
datapath keeps forwarding by cached flows until the revalidators have been through them
(hundreds of ms here). The agent purges that cache when the controller reports a sync that
changed flows (SwitchSynced), then tells the orchestrator which generation its datapath now
forwards by (DatapathSettled). An anchor waits for that report instead of asking the agent
to purge once more (a command round trip and a second purge, 3-7 ms of every handover).

Purges and reports go one at a time, in order: a report never overtakes a purge of an
earlier generation still running.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg

from netfate.bus import subjects
from netfate.bus.messages import DatapathSettled, SwitchSynced
from netfate.counters import LoopFailures

log = logging.getLogger("netfate.agent.settle")


class DatapathSettler:
    """`purge` empties the datapath's flow cache (blocking: run in a thread); `publish`
    sends bytes on a subject."""

    def __init__(self, node: str, purge: Callable[[], None],
                 publish: Callable[[str, bytes], Awaitable[None]]) -> None:
        self.node = node
        self._purge = purge
        self._publish = publish
        self._lock = asyncio.Lock()
        self._failures = LoopFailures("switch-synced", log)

    async def on_synced(self, msg: Msg) -> None:
        """A SwitchSynced for this node: purge if flows changed, then report the
        generation. A malformed message, or a purge that fails, is counted and logged
        (nothing is reported then: the orchestrator falls back to asking)."""
        try:
            rep = SwitchSynced.model_validate_json(msg.data)
            async with self._lock:
                if rep.added or rep.deleted:
                    await asyncio.to_thread(self._purge)
                done = DatapathSettled(node=self.node, generation=rep.generation,
                                       ts=time.time())
                await self._publish(subjects.datapath_settled(self.node),
                                    done.model_dump_json().encode())
            self._failures.ok()
        except Exception as exc:
            self._failures.failed(f"settling the datapath of node {self.node}", exc)
