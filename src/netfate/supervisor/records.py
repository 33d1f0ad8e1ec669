"""PID records: which process a pidfile names, and whether that PID is still the process we
started (PIDs are reused: a record is only trusted after checking /proc).

A record is JSON ``{"pid": 123, "start": 4567, "argv": [...]}``; ``start`` is the process's
start time in clock ticks after boot (field 22 of /proc/<pid>/stat), which no later process
with the same PID can share. A plain ``123`` (a pidfile a daemon writes itself, OVS's) is
read as a record without start time.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from netfate.proc import alive


@dataclass(frozen=True)
class Record:
    pid: int
    start: int | None = None
    argv: list[str] = field(default_factory=list)


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks after boot, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


MAX_RECORD_BYTES = 64 * 1024  # a record is a pid, a start time and an argv


def read_record(pidfile: Path) -> Record | None:
    """The record in ``pidfile``, or None if it is missing, unreadable or not a regular
    file (opened without blocking and checked first: a FIFO put in its place would hold
    the reader, and `testbed down` with it, for ever). At most MAX_RECORD_BYTES are read."""
    try:
        fd = os.open(pidfile, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        text = os.read(fd, MAX_RECORD_BYTES).decode("utf-8", "replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)
    with contextlib.suppress(ValueError):
        return Record(int(text))
    try:
        data = json.loads(text)
        start = data.get("start")
        return Record(int(data["pid"]), int(start) if start is not None else None,
                      [str(a) for a in data.get("argv", [])])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def write_record(pidfile: Path, rec: Record) -> None:
    """Write the record atomically (a reader never sees half a file)."""
    tmp = pidfile.with_name(f".{pidfile.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"pid": rec.pid, "start": rec.start, "argv": rec.argv}) + "\n")
    os.replace(tmp, pidfile)


def runs_one_of(pid: int, programs: tuple[str, ...]) -> bool:
    """Whether ``pid``'s executable name starts with one of ``programs``, or one of them is
    part of an argument of its command line (``netfate`` in ``-m netfate.cli.main``)."""
    try:
        exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        exe = ""
    if any(exe.startswith(p) for p in programs):
        return True
    # Right after exec the kernel shows an empty cmdline for a moment (the new image's
    # arguments are not set up yet): read again briefly before judging. Kernel threads stay
    # empty, and are not ours.
    deadline = time.monotonic() + 0.2
    while True:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        if raw or time.monotonic() >= deadline:
            break
        time.sleep(0.005)
    argv = raw.split(b"\0")
    return any(p.encode() in a for p in programs for a in argv)


def ours(rec: Record, programs: tuple[str, ...] = ()) -> bool:
    """Whether the recorded process still runs (not a zombie), with the recorded start time
    if there is one, and runs one of ``programs`` if any are given."""
    if rec.pid <= 0 or not alive(rec.pid):
        return False
    if rec.start is not None and start_time(rec.pid) != rec.start:
        return False
    return not programs or runs_one_of(rec.pid, programs)
