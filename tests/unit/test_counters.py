"""The in-process counters registry and the loop-failure reporter."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from netfate.counters import LOOP_FAILURES, Counters, LoopFailures, Sample, task_failures


def test_counters_count_by_name_and_labels() -> None:
    c = Counters()
    assert c.value("x") == 0
    assert c.inc("x") == 1
    assert c.inc("x", 2) == 3
    c.inc("x", loop="a")
    c.inc("x", node="n1", loop="b")
    assert c.value("x") == 3
    assert c.value("x", loop="a") == 1
    assert c.value("x", loop="b", node="n1") == 1  # label order does not matter
    assert c.total("x") == 5
    with pytest.raises(ValueError):
        c.inc("x", -1)


def test_snapshot_is_a_sorted_copy() -> None:
    c = Counters()
    c.inc("b")
    c.inc("a", loop="z")
    c.inc("a", loop="y")
    snap = c.snapshot()
    assert snap == [Sample("a", {"loop": "y"}, 1), Sample("a", {"loop": "z"}, 1),
                    Sample("b", {}, 1)]
    c.inc("b")
    assert snap[2].value == 1


def test_counters_are_thread_safe() -> None:
    c = Counters()

    def work() -> None:
        for _ in range(10_000):
            c.inc("n", loop="t")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.value("n", loop="t") == 40_000


def test_loop_failures_count_each_and_log_repeats_sparingly(
        caplog: pytest.LogCaptureFixture) -> None:
    c = Counters()
    f = LoopFailures("telemetry", logging.getLogger("t"), registry=c, repeat_s=60)
    with caplog.at_level(logging.INFO, logger="t"):
        f.failed("telemetry of node cpe1", OSError("bus down"), now=0)
        f.failed("telemetry of node cpe1", OSError("bus down"), now=1)
        f.failed("telemetry of node cpe1", OSError("bus down"), now=2)
        f.failed("telemetry of node cpe1", OSError("bus down"), now=70)
        f.failed("telemetry of node cpe1", ValueError("other"), now=71)
        f.ok()
        f.ok()
    assert c.value(LOOP_FAILURES, loop="telemetry") == 5
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs == [
        "telemetry loop: telemetry of node cpe1: OSError: bus down",
        "telemetry loop: telemetry of node cpe1: OSError: bus down (and 2 more times)",
        "telemetry loop: telemetry of node cpe1: ValueError: other",
        "telemetry loop: working again after 5 failed rounds",
    ]
    assert caplog.records[0].levelno == logging.WARNING
    assert caplog.records[0].exc_info is not None


def test_a_peer_down_is_one_line_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """A subscription's callback that is down: one line, not 60 per operation (probe,
    2026-12-04)."""
    f = LoopFailures("notify", logging.getLogger("n"), registry=Counters(), repeat_s=60)
    with caplog.at_level(logging.INFO, logger="n"):
        for k in range(5):
            f.failed("notifying subscription 1 at http://127.0.0.1:9/", OSError("refused"),
                     now=k, trace=False)
    assert [r.getMessage() for r in caplog.records] == [
        "notify loop: notifying subscription 1 at http://127.0.0.1:9/: OSError: refused"]
    assert caplog.records[0].exc_info is None


def test_task_failures_reports_a_failed_background_task(
        caplog: pytest.LogCaptureFixture) -> None:
    c = Counters()

    async def main() -> None:
        async def boom() -> None:
            raise RuntimeError("no")

        async def fine() -> None:
            return None

        for coro in (boom(), fine()):
            t = asyncio.ensure_future(coro)
            t.add_done_callback(task_failures("coordinator", logging.getLogger("t"), c))
            await asyncio.wait([t])
        await asyncio.sleep(0)

    with caplog.at_level(logging.ERROR, logger="t"):
        asyncio.run(main())
    assert c.value(LOOP_FAILURES, loop="coordinator") == 1
    assert "RuntimeError: no" in caplog.text
