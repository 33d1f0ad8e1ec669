"""Waking the agent's look at its switch when the switch says its ports changed.

The agent reads its switch's ports every PORT_POLL_S (an in-memory OVSDB read) to see
stations associate; on its own that costs a handover half the period on average (25 ms of
a 50 ms target). The network driver's watch (interfaces.PortDriver.watch_ports) pokes this
from the OVSDB client's thread right after the change arrives, so the look happens at once;
the poll stays for what the switch does not tell (the DHCP lease file) and for a driver that
cannot watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from netfate.interfaces import PortDriver

log = logging.getLogger("netfate.agent.port_watch")


class PortsWake:
    """An asyncio event set from any thread by `poke`; `wait` returns when it is set or
    after `timeout` seconds, and clears it."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._unwatch: Callable[[], None] | None = None

    def poke(self) -> None:
        """Thread-safe; a no-op once the loop has closed."""
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        self._event.clear()

    def watch(self, network: PortDriver, node: str) -> None:
        """Ask the driver to poke this on port changes; if it cannot (the switch is not
        there), say so and rely on the poll."""
        try:
            self._unwatch = network.watch_ports(self.poke)
        except Exception as exc:
            log.warning("node %s: cannot watch the switch's ports (%s: %s); polling only",
                        node, type(exc).__name__, exc)

    def close(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
