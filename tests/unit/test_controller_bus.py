"""The bus bridge against a real nats-server on loopback (a private one, started by the test)."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from netfate.bus import subjects
from netfate.bus.messages import ControllerHello, UserIdleReport
from netfate.bus.server import EmbeddedNats
from netfate.controller.bus import BusBridge
from netfate.controller.model import SwitchState


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    s = EmbeddedNats(tmp_path / "nats")
    s.start()
    try:
        yield s
    finally:
        s.stop()


def test_desired_states_arrive_and_reports_leave(server: EmbeddedNats) -> None:
    got: queue.Queue[SwitchState] = queue.Queue()

    async def scenario() -> tuple[list[bytes], list[bytes]]:
        nc = await nats.connect(server.url)
        hellos: list[bytes] = []
        idles: list[bytes] = []

        async def on_hello(m: nats.aio.msg.Msg) -> None:
            hellos.append(m.data)

        async def on_idle(m: nats.aio.msg.Msg) -> None:
            idles.append(m.data)

        await nc.subscribe(subjects.CONTROLLER_HELLO, cb=on_hello)
        await nc.subscribe(subjects.CONTROLLER_IDLE, cb=on_idle)
        await nc.flush()
        bridge = BusBridge(server.url, got.put, nodes=lambda: ["cpe1"])
        await asyncio.to_thread(bridge.start)
        try:
            good = SwitchState(node="cpe1", role="cpe", generation=3)
            await nc.publish(subjects.controller_desired("cpe1"),
                             good.model_dump_json().encode())
            # for another node than its subject says, and not a state at all: both ignored
            await nc.publish(subjects.controller_desired("cpe2"),
                             good.model_dump_json().encode())
            await nc.publish(subjects.controller_desired("cpe1"), b"{not json")
            await nc.flush()
            # publish() is called from os-ken's threads, never the NATS loop's
            report = UserIdleReport(node="cpe1", user="u", mac="02:aa:00:00:00:01", ts=1.0)
            t = threading.Thread(target=bridge.publish, args=(subjects.CONTROLLER_IDLE, report))
            t.start()
            t.join()
            # a loaded 2-core machine can take seconds to deliver: wait for both, bounded
            for _ in range(500):
                if idles and hellos:
                    break
                await asyncio.sleep(0.02)
        finally:
            await asyncio.to_thread(bridge.stop)
            await nc.close()
        return hellos, idles

    hellos, idles = asyncio.run(scenario())
    state = got.get(timeout=5)
    assert state.node == "cpe1" and state.generation == 3
    assert got.empty()
    assert ControllerHello.model_validate_json(hellos[0]).nodes == ["cpe1"]
    assert UserIdleReport.model_validate_json(idles[0]).user == "u"


def test_start_fails_clearly_without_a_server(tmp_path: Path) -> None:
    from netfate.bus.server import free_port
    from netfate.errors import DriverError

    bridge = BusBridge(f"nats://127.0.0.1:{free_port()}", lambda s: None)
    with pytest.raises(DriverError, match="NATS"):
        bridge.start(timeout=1.5)
