"""The supervisor with harmless real processes (sleep, a tiny Python TCP server on loopback):
start with a recorded PID, readiness, crash reports, stop by recorded PID, groups."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netfate.ports import free_port
from netfate.proc import alive
from netfate.supervisor import Group, StartError, Supervised, probes, read_record, stop_recorded

SERVER = """
import socket, sys, time
print("binding", flush=True)
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
print("serving", flush=True)
while True:
    c, _ = s.accept(); c.close()
"""


def server(tmp_path: Path, port: int, name: str = "srv") -> Supervised:
    return Supervised(name, [sys.executable, "-c", SERVER, str(port)], tmp_path,
                      programs=("python",))


def test_start_records_pid_and_waits_for_the_port(tmp_path: Path) -> None:
    port = free_port()
    sup = server(tmp_path, port)
    pid = sup.start(ready=probes.tcp_port(port), timeout=10)
    try:
        rec = json.loads((tmp_path / "srv.pid").read_text())
        assert rec["pid"] == pid and rec["start"] and rec["argv"][0] == sys.executable
        assert sup.running() and probes.tcp_port(port)()
        assert probes.log_line(tmp_path / "srv.log", "serving")()
    finally:
        assert sup.stop() == pid
    assert not alive(pid) and not (tmp_path / "srv.pid").exists()
    assert sup.stop() is None  # idempotent


def test_early_exit_is_a_crash_report(tmp_path: Path) -> None:
    sup = Supervised("bad", [sys.executable, "-c", "import sys; print('no config here');"
                             " sys.exit(3)"], tmp_path)
    with pytest.raises(StartError) as err:
        sup.start(ready=lambda: False, timeout=10)
    assert err.value.exit_code == 3 and "no config here" in err.value.tail
    assert "exited with 3" in str(err.value) and "no config here" in str(err.value)
    assert not (tmp_path / "bad.pid").exists()


def test_not_ready_in_time_is_ended(tmp_path: Path) -> None:
    sup = Supervised("slow", ["sleep", "30"], tmp_path, programs=("sleep",))
    with pytest.raises(StartError) as err:
        sup.start(ready=probes.path_exists(tmp_path / "never"), timeout=0.3)
    assert "not ready after 0.3 s" in str(err.value) and err.value.exit_code is None
    assert not sup.running()
    assert not (tmp_path / "slow.pid").exists()


def test_missing_program_is_a_driver_error(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="cannot run /nonexistent/prog"):
        Supervised("x", ["/nonexistent/prog"], tmp_path).start()


def test_stop_by_record_from_another_object(tmp_path: Path) -> None:
    first = Supervised("nap", ["sleep", "30"], tmp_path, programs=("sleep",))
    pid = first.start()
    # Another process (a later CLI call) knows only the run dir.
    later = Supervised("nap", ["sleep", "30"], tmp_path, programs=("sleep",))
    assert later.pid == pid and later.running()
    assert later.stop() == pid
    assert first.proc is not None and first.proc.wait(timeout=5) == -signal.SIGTERM
    assert not alive(pid)


def test_a_reused_pid_is_not_signalled(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "30"])  # not ours: a record with another start time
    try:
        pidfile = tmp_path / "old.pid"
        pidfile.write_text(json.dumps({"pid": other.pid, "start": 1, "argv": ["sleep"]}))
        assert stop_recorded(pidfile, ("sleep",)) is None
        assert other.poll() is None and not pidfile.exists()
        pidfile.write_text(f"{other.pid}\n")  # a plain pidfile of another program
        assert stop_recorded(pidfile, ("nats-server",)) is None and other.poll() is None
        pidfile.write_text(f"{other.pid}\n")  # a plain pidfile of the right program
        assert stop_recorded(pidfile, ("sleep",)) == other.pid
        assert other.wait(timeout=5) == -signal.SIGTERM
    finally:
        other.kill()
        other.wait()


def test_start_ends_an_orphan_recorded_by_an_earlier_run(tmp_path: Path) -> None:
    old = Supervised("nap", ["sleep", "30"], tmp_path, programs=("sleep",))
    old_pid = old.start()
    new = Supervised("nap", ["sleep", "31"], tmp_path, programs=("sleep",))
    new_pid = new.start()
    try:
        assert old.proc is not None and old.proc.wait(timeout=5) is not None
        rec = read_record(tmp_path / "nap.pid")
        assert rec is not None and rec.pid == new_pid != old_pid
    finally:
        new.stop()


def test_sigkill_after_grace(tmp_path: Path) -> None:
    stubborn = Supervised("stubborn", [sys.executable, "-c", "import signal, time;"
                                       "signal.signal(signal.SIGTERM, signal.SIG_IGN);"
                                       "print('up', flush=True); time.sleep(30)"], tmp_path)
    pid = stubborn.start(ready=probes.log_line(tmp_path / "stubborn.log", "up"), timeout=10)
    t0 = time.monotonic()
    assert stubborn.stop(grace=0.5) == pid
    assert time.monotonic() - t0 < 5 and not alive(pid)


def test_a_failed_start_in_a_group_ends_the_whole_group(tmp_path: Path) -> None:
    """The control-plane bench's case: a server is up, the next process fails; the server
    must not outlive the start (nor a process a member started and recorded itself)."""
    port = free_port()
    child_pidfile = tmp_path / "grandchild.pid"
    # A member that starts its own helper and records it, like the orchestrator's NATS.
    parent = Supervised("parent", [sys.executable, "-c",
                                   "import subprocess, sys, time;"
                                   "p = subprocess.Popen(['sleep', '30']);"
                                   f"open({str(child_pidfile)!r}, 'w').write(str(p.pid));"
                                   "time.sleep(30)"], tmp_path, programs=("python",))
    with pytest.raises(StartError), Group() as group:
        srv = group.start(server(tmp_path, port), ready=probes.tcp_port(port), timeout=10)
        group.add(Supervised("grandchild", [], tmp_path, pidfile=child_pidfile,
                             programs=("sleep",)))
        group.start(parent, ready=probes.path_exists(child_pidfile), timeout=10)
        group.note()
        group.start(Supervised("fails", [sys.executable, "-c", "raise SystemExit(2)"],
                               tmp_path), ready=lambda: False, timeout=10)
    assert srv.pid is None and not probes.tcp_port(port)()
    assert set(group.started) == {"srv", "grandchild", "parent"}
    _settle(group)
    assert group.leftovers() == []


def _settle(group: Group, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while group.leftovers() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_released_group_keeps_running(tmp_path: Path) -> None:
    with Group() as group:
        nap = group.start(Supervised("nap", ["sleep", "30"], tmp_path, programs=("sleep",)))
        group.release()
    try:
        assert nap.running()
    finally:
        nap.stop()


def test_an_interrupted_start_leaves_nothing_running(tmp_path: Path) -> None:
    def interrupted() -> bool:
        raise KeyboardInterrupt

    sup = Supervised("nap", ["sleep", "30"], tmp_path, programs=("sleep",))
    with pytest.raises(KeyboardInterrupt):
        sup.start(ready=interrupted)
    assert not sup.running() and not (tmp_path / "nap.pid").exists()


def test_a_pid_record_that_is_not_a_regular_file_is_no_record(tmp_path: Path) -> None:
    """A FIFO in a record's place held its reader (`testbed down`, `access cleanup`) for
    ever; a symlink could point it anywhere (probe of 2026-12-06)."""
    import os

    fifo = tmp_path / "fifo.pid"
    os.mkfifo(fifo)
    link = tmp_path / "link.pid"
    real = tmp_path / "real.pid"
    real.write_text("4242\n")
    link.symlink_to(real)
    t0 = time.monotonic()
    assert read_record(fifo) is None
    assert read_record(link) is None
    assert read_record(tmp_path) is None
    assert read_record(tmp_path / "missing.pid") is None
    assert time.monotonic() - t0 < 1.0
    rec = read_record(real)
    assert rec is not None and rec.pid == 4242
