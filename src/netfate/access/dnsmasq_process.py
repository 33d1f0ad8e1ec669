"""One supervised dnsmasq process in a namespace: spawn, wait until it holds its sockets,
stop, read its log. The CPE's DHCP/DNS (access.dnsmasq) and the captive resolver
(access.captive_dns) are both this, with their own arguments and readiness.

Files, in the state dir: <name>.pid (the supervisor's record of its PID: dnsmasq writes
none), <name>.log (dnsmasq's own log), <name>.out (its stdout/stderr).
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from collections.abc import Iterable
from pathlib import Path

from netfate.errors import DriverError, InvalidInput
from netfate.supervisor import StartError, Supervised
from netfate.supervisor import stop_recorded as stop_pidfile

PROGRAM = "dnsmasq"


def udp_ports(pid: int) -> set[int]:
    """The local ports of the UDP sockets process ``pid`` holds (in its own namespace)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports = set()
    for table in ("udp", "udp6"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/{table}") as fh:
            next(fh, None)
            for line in fh:
                cols = line.split()
                if len(cols) > 9 and cols[9] in inodes:
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def process_files(name: str) -> tuple[str, ...]:
    """The files a DnsmasqProcess named ``name`` keeps in its state dir."""
    return (f"{name}.pid", f"{name}.log", f"{name}.out")


def _mode(path: Path) -> int | None:
    """st_mode of what ``path`` names (links followed); None if nothing is there."""
    try:
        return os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:  # ENOTDIR: a file where a directory should be; EACCES, ELOOP
        raise InvalidInput(f"state dir {path}: {exc.strerror}") from None


def check_state_dir(state_dir: Path, files: Iterable[str] = ()) -> None:
    """InvalidInput naming the path unless ``state_dir`` is a directory or absent (made
    when needed), and each of its ``files`` that is there a regular file: a file given as
    the state dir failed later with NotADirectoryError, and a fifo would block its reader.
    Only stat()s: nothing is opened."""
    mode = _mode(Path(state_dir))
    if mode is None:
        return
    if not stat.S_ISDIR(mode):
        raise InvalidInput(f"state dir {state_dir} is not a directory")
    for name in files:
        mode = _mode(Path(state_dir) / name)
        if mode is not None and not stat.S_ISREG(mode):
            raise InvalidInput(f"{Path(state_dir) / name} in the state dir is not a "
                               "regular file")


class DnsmasqProcess:
    """A dnsmasq named ``name`` (its files' stem and the supervisor's label) in ``netns``
    (None: the current one). Subclasses give ``argv()`` and ``wanted_ports()``: the UDP
    ports it must hold to be ready (its own sockets, not an answer on the port: a stale
    dnsmasq could answer there)."""

    def __init__(self, name: str, netns: str | None, state_dir: Path,
                 binary: str = PROGRAM) -> None:
        self.name = name
        self.netns = netns
        self.state_dir = Path(state_dir)
        self.pidfile = self.state_dir / f"{name}.pid"
        self.logfile = self.state_dir / f"{name}.log"
        self.outfile = self.state_dir / f"{name}.out"
        self.binary = binary
        self._sup: Supervised | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def wanted_ports(self) -> set[int]:
        raise NotImplementedError

    @property
    def _proc(self) -> subprocess.Popen[bytes] | None:
        return self._sup.proc if self._sup is not None else None

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None else None

    def running(self) -> bool:
        proc = self._proc
        return proc is not None and proc.poll() is None

    def start(self, timeout: float = 5.0) -> None:
        """Spawn it; return once it holds its ports. DriverError with the end of its log if
        it exits or does not get there within ``timeout`` seconds; then it is not running."""
        if self.running():
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._before_start()
        # nsenter execs dnsmasq (no fork for --net alone): the PID is dnsmasq's.
        self._sup = Supervised(self.name, self.argv(), self.state_dir, programs=(PROGRAM,),
                               netns=self.netns, pidfile=self.pidfile, log=self.outfile,
                               logs=[self.logfile], append_log=False)
        try:
            self._sup.start(ready=self._ready, timeout=timeout)
        except StartError as exc:
            self._sup = None
            what = (f"exited ({exc.exit_code}) while starting" if exc.exit_code is not None
                    else f"not ready after {timeout:g} s")
            raise DriverError(
                f"{self.name} in {self.netns} {what}:\n{self.log_tail()}") from exc

    def _before_start(self) -> None:
        """Files the process needs before it starts (subclasses)."""

    def _ready(self) -> bool:
        pid = self.pid
        return pid is not None and self.wanted_ports() <= udp_ports(pid)

    def stop(self) -> None:
        """End it (SIGTERM, then SIGKILL); idempotent. Without a handle (another process
        started it), the one its PID file records, if that PID still runs dnsmasq."""
        if self._sup is not None:
            self._sup.stop(grace=3.0)
            self._sup = None
        else:
            stop_pidfile(self.pidfile, (PROGRAM,))

    def log_tail(self, lines: int = 15) -> str:
        text = ""
        for f in (self.outfile, self.logfile):
            with contextlib.suppress(OSError):
                text += f.read_text(errors="replace")
        return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"
