"""Which generation each node's datapath forwards by, as its agent reports it
(DatapathSettled, agent/settle.py), and waiting for a generation to be reached.

An anchor is made or broken only once the switch that changed first forwards by its new
flows (switches.Switches.settle). The agent purges its datapath's flow cache on the
controller's report and says so; waiting for that saying costs nothing extra. A node whose
agent has never reported (an agent of before) is asked instead, and so is one whose report
does not come within REPORT_WAIT_S (NATS delivers at most once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from netfate.bus.messages import DatapathSettled

REPORT_WAIT_S = 0.3  # for a report before asking the agent (a purge takes 2-10 ms here)


class Datapaths:
    def __init__(self) -> None:
        self.settled: dict[str, int] = {}  # node -> the latest generation reported
        self._waiters: dict[str, list[tuple[int, asyncio.Future[None]]]] = {}

    def report(self, msg: DatapathSettled) -> None:
        """An agent's report: wakes whoever waits for that generation or an earlier one."""
        self.settled[msg.node] = max(self.settled.get(msg.node, -1), msg.generation)
        waiters = self._waiters.pop(msg.node, [])
        keep = []
        for gen, fut in waiters:
            if fut.done():
                continue
            if msg.generation >= gen:
                fut.set_result(None)
            else:
                keep.append((gen, fut))
        if keep:
            self._waiters[msg.node] = keep

    async def wait(self, gens: Mapping[str, int], timeout: float = REPORT_WAIT_S
                   ) -> list[str]:
        """Until each node's datapath has reported its generation in `gens` (or a later
        one), at most `timeout` s; the nodes still short of it, sorted: those whose agent
        never reported are not waited for."""
        loop = asyncio.get_running_loop()
        futs: dict[str, asyncio.Future[None]] = {}
        short = []
        for node, gen in gens.items():
            if self.settled.get(node, -1) >= gen:
                continue
            if node not in self.settled:
                short.append(node)
                continue
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(node, []).append((gen, fut))
            futs[node] = fut
        if futs:
            await asyncio.wait(futs.values(), timeout=timeout)
            for node, fut in futs.items():
                if not fut.done():
                    fut.cancel()
                    short.append(node)
        return sorted(short)
