"""The testbed's processes (orchestrator, agents): started detached, their PIDs recorded in
the run dir, and ended by those PIDs only, after checking the PID is still ours."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from netfate import paths
from netfate.proc import alive as pid_alive
from netfate.proc import end_pid

MARK = "netfate"  # every process we start runs the netfate CLI


def pid_dir() -> Path:
    return paths.run_dir() / "pids"


def netfate_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "netfate.cli.main", *args]


def start(name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
    pid_dir().mkdir(parents=True, exist_ok=True)
    log = (pid_dir() / f"{name}.log").open("ab")
    proc = subprocess.Popen(  # noqa: S603 - argument list
        argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    (pid_dir() / f"{name}.pid").write_text(json.dumps({"pid": proc.pid, "argv": argv}))
    return proc.pid


def _ours(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return pid_alive(pid) and any(MARK.encode() in part for part in cmd)


def recorded() -> dict[str, int]:
    out = {}
    for f in sorted(pid_dir().glob("*.pid")) if pid_dir().is_dir() else []:
        with contextlib.suppress(ValueError, OSError, KeyError):
            out[f.stem] = int(json.loads(f.read_text())["pid"])
    return out


def alive(name: str) -> bool:
    pid = recorded().get(name)
    return pid is not None and _ours(pid)


def stop(name: str, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int | None:
    pid = recorded().get(name)
    if pid is None:
        return None
    if _ours(pid):
        end_pid(pid, sig, timeout)
    with contextlib.suppress(FileNotFoundError):
        (pid_dir() / f"{name}.pid").unlink()
    return pid


def stop_all() -> list[int]:
    names = list(recorded())
    # Agents first, then the orchestrator (which owns the bus).
    names.sort(key=lambda n: n == "orchestrator")
    return [p for p in (stop(n) for n in names) if p is not None]
