"""The testbed's processes (orchestrator, controller, agents): started detached through the
supervisor, their PIDs recorded in the run dir, and ended by those PIDs only, after checking
the PID is still ours (its start time, and the netfate CLI in its command line)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from netfate import paths
from netfate.supervisor import Group, Probe, Supervised, ours, read_record

MARK = "netfate"  # every process we start runs the netfate CLI


def pid_dir() -> Path:
    return paths.run_dir() / "pids"


def netfate_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "netfate.cli.main", *args]


def supervised(name: str, argv: list[str] | None = None,
               env: dict[str, str] | None = None) -> Supervised:
    """The testbed process ``name``: log <pid_dir>/<name>.log, record <name>.pid. ``env``
    is added to this process's environment."""
    return Supervised(name, argv or [], pid_dir(), programs=(MARK,),
                      env={**os.environ, **env} if env else None)


_together: list[Group] = []


@contextlib.contextmanager
def together() -> Iterator[Group]:
    """Processes started in this block are ended together if the block fails (a start that
    fails, or a wait after it): a failed `testbed up` leaves none of them running."""
    group = Group()
    _together.append(group)
    try:
        yield group
    except BaseException:
        group.stop()
        raise
    else:
        group.release()
    finally:
        _together.remove(group)


def start(name: str, argv: list[str], env: dict[str, str] | None = None,
          ready: Probe | None = None, timeout: float = 30.0) -> int:
    """Start it (see Supervised.start: StartError with its log's end if it exits or is not
    ``ready`` within ``timeout`` s; then it, and the rest of an enclosing together() block,
    is ended). Returns its PID."""
    sup = supervised(name, argv, env)
    if _together:
        _together[-1].start(sup, ready, timeout)
        return _together[-1].started[name]
    return sup.start(ready, timeout)


def recorded() -> dict[str, int]:
    out = {}
    for f in sorted(pid_dir().glob("*.pid")) if pid_dir().is_dir() else []:
        rec = read_record(f)
        if rec is not None:
            out[f.stem] = rec.pid
    return out


def alive(name: str) -> bool:
    rec = read_record(pid_dir() / f"{name}.pid")
    return rec is not None and ours(rec, (MARK,))


def crash_reports(lines: int = 8) -> str:
    """For each recorded process that no longer runs: its name and the end of its log
    ("" when all run), to add to an error message."""
    out = []
    for name in recorded():
        if not alive(name):
            out.append(f"\n{name} is not running; its log ends:\n"
                       f"{supervised(name).tail(lines)}")
    return "".join(out)


def stop(name: str, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int | None:
    """End ``name`` by its recorded PID if it is still ours; forget the record. Returns the
    recorded PID (None if there was none)."""
    pid = recorded().get(name)
    if pid is None:
        return None
    supervised(name).stop_recorded(timeout, sig)
    return pid


def stop_all() -> list[int]:
    names = list(recorded())
    # Agents first, then the orchestrator (which owns the bus).
    names.sort(key=lambda n: n == "orchestrator")
    return [p for p in (stop(n) for n in names) if p is not None]
