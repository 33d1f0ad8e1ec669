"""The testbed's process records through the supervisor, with harmless processes (no root):
recorded, found alive by record, stopped by record; a failed start in a together() block
ends what the block started."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from netfate.proc import alive
from netfate.supervisor import StartError
from netfate.testbed import processes

NAP = [sys.executable, "-c", "import time; time.sleep(30)", "netfate-test"]


@pytest.fixture(autouse=True)
def pid_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(processes, "pid_dir", lambda: tmp_path)
    return tmp_path


def test_record_alive_stop(pid_dir: Path) -> None:
    pid = processes.start("agent-x", NAP)
    assert processes.recorded() == {"agent-x": pid} and processes.alive("agent-x")
    assert processes.stop_all() == [pid]
    assert not processes.alive("agent-x") and processes.recorded() == {}
    assert (pid_dir / "agent-x.log").exists()


def test_a_failed_start_ends_the_block(pid_dir: Path) -> None:
    with pytest.raises(StartError, match="controller exited with 4 while starting"), \
            processes.together():
        first = processes.start("orchestrator", NAP)
        processes.start("controller", [sys.executable, "-c", "raise SystemExit(4)"],
                        ready=lambda: False)
    assert not alive(first) and processes.recorded() == {}


def test_a_failed_wait_ends_the_block() -> None:
    with pytest.raises(RuntimeError), processes.together():
        first = processes.start("orchestrator", NAP)
        raise RuntimeError("nodes did not register")
    assert not alive(first)


def test_a_block_that_succeeds_keeps_them(pid_dir: Path) -> None:
    with processes.together():
        pid = processes.start("orchestrator", NAP)
    try:
        assert processes.alive("orchestrator")
    finally:
        assert processes.stop("orchestrator") == pid


def test_crash_reports_name_the_dead_with_their_log() -> None:
    processes.start("agent-ok", NAP)
    processes.start("agent-dead", [sys.executable, "-c", "print('cannot reach NATS')",
                                   "netfate-test"])
    try:
        deadline = time.monotonic() + 10
        while processes.alive("agent-dead") and time.monotonic() < deadline:
            time.sleep(0.02)
        report = processes.crash_reports()
        assert "agent-dead is not running" in report and "cannot reach NATS" in report
        assert "agent-ok" not in report
    finally:
        processes.stop_all()
