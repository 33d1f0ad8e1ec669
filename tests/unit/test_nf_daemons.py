"""Issue #16 (chaos, "an NF's process" killed): a native NF whose daemon died is reported
stopped, so the orchestrator's reconciliation has the agent start it again; start_nf then
runs its start script even though the record says running. No root."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from netfate.bundle import BundleStore
from netfate.drivers.native import NativeCompute
from netfate.drivers.nf_records import dead_daemons
from netfate.interfaces import NFInfo, NFState
from netfate.supervisor.records import start_time


def _record(run: Path, name: str, pid: int) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / f"{name}.pid").write_text(f"{pid} {start_time(pid)}\n")


def test_dead_daemons_by_pid_and_start_time(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _record(run, "alive", os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    (run / "gone.pid").write_text(f"{child.pid} 1\n")
    (run / "req-1.pid").write_text(f"{child.pid} 1\n")  # a one-shot request: not a daemon
    assert dead_daemons(run) == ["gone"]
    assert dead_daemons(tmp_path / "none") == []


def test_a_running_nf_with_a_dead_daemon_is_reported_stopped(tmp_path: Path) -> None:
    nc = NativeCompute("cpe1", tmp_path, BundleStore(tmp_path / "bundles"))
    iid = "cpe1-u1-packet-inspector"
    d = nc.records.dir(iid)
    (d / "run").mkdir(parents=True)
    nc.records.save(NFInfo(instance_id=iid, node="cpe1", owner="u1", name="packet-inspector",
                           flavour="native", bundle_sha256="0" * 64, state=NFState.RUNNING,
                           ports=[]))
    _record(d / "run", "inspector", os.getpid())
    assert [i.state for i in nc.list_nfs()] == [NFState.RUNNING]
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    (d / "run" / "inspector.pid").write_text(f"{child.pid} 1\n")
    assert [i.state for i in nc.list_nfs()] == [NFState.STOPPED]
    assert asdict(nc.records.load(iid))["state"] == NFState.RUNNING  # the record stands
