"""One orchestrator per state directory: its SQLite database, its embedded nats-server's PID
file and its token are its own. A second orchestrator given the same directory would take
the first one's nats-server for an orphan and end it, and write the same database; it is
refused instead, naming the holder.

The lock is ``flock(2)`` on ``<state_dir>/orchestrator.lock`` (its PID written inside, for
the message), held for as long as the process lives: the kernel drops it when the process
dies, even by SIGKILL, so a crashed orchestrator never blocks the next one. The descriptor
is not inherited (PEP 446), so the nats-server and FreeRADIUS it starts do not hold it."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from netfate.errors import Conflict, InvalidInput

LOCK_NAME = "orchestrator.lock"

_held: set[Path] = set()  # resolved state dirs this process holds


class Held:
    """A held lock: `release` lets it go (once; again is nothing)."""

    def __init__(self, state_dir: Path, fd: int) -> None:
        self.state_dir = state_dir
        self._fd: int | None = fd

    def release(self) -> None:
        """Let the lock go. The file stays: removing it would let a third process lock a
        new file while a second still waits on the old one."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        _held.discard(self.state_dir)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)


def hold(state_dir: Path) -> Held:
    """Take `state_dir`'s lock (creating the directory) until the handle's `release`.
    Conflict when a live process holds it, this one included (an orchestrator of its own on
    it), with its PID; InvalidInput when the directory cannot be created or written (its
    path and why)."""
    d = Path(os.path.abspath(state_dir))
    if d in _held:
        raise Conflict(f"this process already runs an orchestrator on the state directory {d}")
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd = os.open(d / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise InvalidInput(f"state directory {d}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_pid(fd)
        os.close(fd)
        raise Conflict(
            f"another orchestrator{f' (PID {holder})' if holder else ''} uses the state "
            f"directory {d}: one orchestrator per state directory (its database and its "
            "NATS are that one's); stop it, or give this one another --state-dir") from None
    except OSError as exc:
        os.close(fd)
        raise InvalidInput(f"state directory {d}: cannot lock {LOCK_NAME}: "
                           f"{exc.strerror or exc}") from exc
    _held.add(d)
    held = Held(d, fd)
    try:  # the PID, for the message a second orchestrator gets
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:
        held.release()
        raise InvalidInput(f"state directory {d}: cannot write {LOCK_NAME}: "
                           f"{exc.strerror or exc}") from exc
    return held


def probe(state_dir: Path) -> None:
    """`hold` and let go: the errors hold would raise, before a start that takes it."""
    hold(state_dir).release()


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip())
    return None
