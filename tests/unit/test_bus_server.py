"""The embedded nats-server through the supervisor: up, recorded, ended by PID; a port held
by another program is a crash report, and nothing is left running."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from netfate.bus.server import EmbeddedNats, stop_recorded
from netfate.proc import alive
from netfate.supervisor import StartError, read_record


def test_up_recorded_and_ended(tmp_path: Path) -> None:
    nats = EmbeddedNats(tmp_path)
    nats.start()
    assert nats.proc is not None
    pid = nats.proc.pid
    rec = read_record(nats.pidfile)
    assert rec is not None and rec.pid == pid and rec.start
    # From anywhere that knows the run dir (testbed down, after an orchestrator was killed):
    assert stop_recorded(tmp_path) == pid
    assert not alive(pid) and not nats.pidfile.exists()
    nats.stop()  # reaps it; nothing else to end


def test_a_port_held_by_another_program_is_a_crash_report(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        nats = EmbeddedNats(tmp_path, other.getsockname()[1])
        with pytest.raises(StartError, match="nats-server exited with 1 while starting") as err:
            nats.start()
    assert "address already in use" in err.value.tail
    assert nats.proc is None and not nats.pidfile.exists()
