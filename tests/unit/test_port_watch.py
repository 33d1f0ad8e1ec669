"""The agent's wake-up on port changes (agent/port_watch.py) and the IDL's watcher list."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from netfate.agent.port_watch import PortsWake
from netfate.drivers.ovs_idl import PortWatchers
from netfate.errors import DriverError


class _Net:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.callbacks: list[Callable[[], None]] = []

    def watch_ports(self, callback: Callable[[], None]) -> Callable[[], None]:
        if self.fail:
            raise DriverError("OVS is not running")
        self.callbacks.append(callback)
        return lambda: self.callbacks.remove(callback)


def test_a_poke_from_another_thread_ends_the_wait_at_once() -> None:
    async def main() -> float:
        wake = PortsWake()
        net = _Net()
        wake.watch(net, "cpe1")  # type: ignore[arg-type]
        threading.Timer(0.05, net.callbacks[0]).start()
        t0 = time.monotonic()
        await wake.wait(5)
        took = time.monotonic() - t0
        wake.close()
        assert net.callbacks == []
        return took

    assert asyncio.run(main()) < 1


def test_without_a_poke_the_wait_is_the_poll_and_the_event_is_cleared() -> None:
    async def main() -> None:
        wake = PortsWake()
        wake.poke()
        await wake.wait(5)  # set before: returns at once
        t0 = time.monotonic()
        await wake.wait(0.05)  # cleared: waits the whole poll period
        assert time.monotonic() - t0 >= 0.04

    asyncio.run(main())


def test_a_switch_that_cannot_be_watched_leaves_polling() -> None:
    async def main() -> None:
        wake = PortsWake()
        wake.watch(_Net(fail=True), "cpe1")  # type: ignore[arg-type]
        wake.close()  # nothing to stop
        await wake.wait(0.01)

    asyncio.run(main())


def test_a_poke_after_the_loop_closed_is_harmless() -> None:
    async def make() -> PortsWake:
        return PortsWake()

    wake = asyncio.run(make())
    wake.poke()


def test_port_watchers_survive_a_failing_one_and_can_be_removed() -> None:
    w = PortWatchers()
    calls: list[str] = []

    def bad() -> None:
        raise RuntimeError("bug")

    w.add(bad)
    w.add(lambda: calls.append("ok"))
    w.fire()
    assert calls == ["ok"]
    w.remove(bad)
    w.remove(bad)  # twice: a no-op
    w.fire()
    assert calls == ["ok", "ok"]
