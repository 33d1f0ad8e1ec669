"""One supervised process: started from an argument list with its PID recorded, waited on
until a probe says it is ready, stopped by that recorded PID, its log tailed for errors.

A start that fails (the process exits early or is not ready in time) ends the process it
started and raises StartError with the exit code and the last lines of its log: nothing is
left running.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from netfate.errors import DriverError
from netfate.proc import end_pid, netns_argv
from netfate.supervisor.records import Record, ours, read_record, start_time, write_record

Probe = Callable[[], bool]
"""Readiness: True once the process serves (called every ``poll`` s until the timeout)."""


class StartError(DriverError):
    """A supervised process exited while starting, or was not ready in time. Carries the
    crash report: ``name``, ``exit_code`` (None: it was still running and has been ended),
    ``tail`` (its last log lines) and ``reason``."""

    def __init__(self, name: str, reason: str, exit_code: int | None, tail: str) -> None:
        self.name, self.reason, self.exit_code, self.tail = name, reason, exit_code, tail
        super().__init__(f"{name} {reason}:\n{tail}")


class Supervised:
    """A process the project starts (or finds recorded by an earlier run).

    - ``argv``: the command, an argument list (never a shell string); run in network
      namespace ``netns`` through nsenter (which execs: the PID is the program's).
    - ``run_dir``: where the PID record ``<name>.pid`` and the log ``<name>.log``
      (stdout and stderr) go, unless ``pidfile``/``log`` say otherwise.
    - ``programs``: what the recorded PID must still run (exe name prefix, or a part of its
      command line) to be ended: a PID reused by another program is never signalled.
    - ``logs``: other files the program writes itself, tailed after ``log`` in crash reports.
    - ``env``: the child's whole environment (None: this process's).
    """

    def __init__(self, name: str, argv: Sequence[str], run_dir: Path, *,
                 programs: Sequence[str] = (), netns: str | None = None,
                 env: Mapping[str, str] | None = None, pidfile: Path | None = None,
                 log: Path | None = None, logs: Sequence[Path] = (), append_log: bool = True,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.run_dir = Path(run_dir)
        self.programs = tuple(programs)
        self.netns = netns
        self.env = dict(env) if env is not None else None
        self.pidfile = pidfile or self.run_dir / f"{name}.pid"
        self.log = log or self.run_dir / f"{name}.log"
        self.logs = tuple(logs)
        self.append_log = append_log
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    # -- state ------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The PID if the process runs and is still ours (ours by its record, or a child)."""
        if self.proc is not None:
            return self.proc.pid if self.proc.poll() is None else None
        rec = read_record(self.pidfile)
        return rec.pid if rec is not None and ours(rec, self.programs) else None

    def running(self) -> bool:
        return self.pid is not None

    def exit_code(self) -> int | None:
        """The exit code of a process this object started, once it has exited."""
        return self.proc.poll() if self.proc is not None else None

    # -- start ------------------------------------------------------------------------------
    def start(self, ready: Probe | None = None, timeout: float = 10.0,
              poll: float = 0.02) -> int:
        """Start the process (ending first an orphan of an earlier run recorded in the
        pidfile), record its PID, and wait up to ``timeout`` s for ``ready`` (none: started is
        ready). Returns the PID. StartError with the crash report if it exits first or is not
        ready in time (and then it has been ended); DriverError if the program is missing."""
        if self.running() and self.proc is not None:
            return self.proc.pid
        self.stop_recorded()
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab" if self.append_log else "wb") as out:
            try:
                self.proc = subprocess.Popen(  # noqa: S603 - argument list, never a shell
                    netns_argv(self.netns, self.argv), stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
                    start_new_session=True)
            except (FileNotFoundError, PermissionError) as exc:
                raise DriverError(f"cannot run {self.argv[0]} for {self.name}: {exc}") from exc
        pid = self.proc.pid
        try:
            write_record(self.pidfile, Record(pid, start_time(pid), self.argv))
            self.wait_ready(ready, timeout, poll)
        except BaseException:  # Ctrl-C or a probe's own error too: nothing left running
            self.stop()
            raise
        return pid

    def wait_ready(self, ready: Probe | None, timeout: float, poll: float = 0.02) -> None:
        """Until ``ready()`` (once the process is started). On an early exit or the timeout:
        the process is ended and StartError raised with its crash report."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.exit_code()
            if code is not None:
                self.fail(f"exited with {code} while starting")
            if ready is None or _probe(ready):
                return
            if time.monotonic() >= deadline:
                self.fail(f"not ready after {timeout:g} s")
            time.sleep(poll)

    def fail(self, reason: str) -> None:
        """End the process and raise StartError with its crash report."""
        code = self.exit_code()
        self.stop()
        raise StartError(self.name, reason, code, self.tail())

    # -- stop -------------------------------------------------------------------------------
    def stop(self, grace: float = 5.0, sig: int = signal.SIGTERM) -> int | None:
        """End the process: ``sig``, then SIGKILL after ``grace`` s; by the child handle if
        this object started it, else by the recorded PID once checked to be still ours.
        Removes the record. Idempotent. Returns the PID ended, or None."""
        ended = None
        if self.proc is not None:
            proc, self.proc = self.proc, None
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                ended = proc.pid
            with contextlib.suppress(FileNotFoundError):
                self.pidfile.unlink()
            return ended
        return self.stop_recorded(grace, sig)

    def stop_recorded(self, grace: float = 5.0, sig: int = signal.SIGTERM) -> int | None:
        """End the process the pidfile records, if it is still ours; remove the file."""
        return stop_recorded(self.pidfile, self.programs, grace, sig)

    # -- logs -------------------------------------------------------------------------------
    def tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines of each log, joined; "(no log)" if there are none."""
        out: list[str] = []
        for f in (self.log, *self.logs):
            with contextlib.suppress(OSError):
                out += f.read_text(errors="replace").strip().splitlines()[-lines:]
        return "\n".join(out) or "(no log)"

    def __enter__(self) -> Supervised:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def stop_recorded(pidfile: Path, programs: Sequence[str] = (), grace: float = 5.0,
                  sig: int = signal.SIGTERM) -> int | None:
    """End the process ``pidfile`` records if it is still ours (its start time, when
    recorded, and one of ``programs``), then remove the file. Returns the PID ended."""
    rec = read_record(pidfile)
    ended = None
    if rec is not None and ours(rec, tuple(programs)):
        end_pid(rec.pid, sig, grace)
        ended = rec.pid
    with contextlib.suppress(FileNotFoundError):
        pidfile.unlink()
    return ended


def _probe(ready: Probe) -> bool:
    try:
        return bool(ready())
    except OSError:
        return False
