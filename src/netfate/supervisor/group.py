"""Processes started together are ended together: if one of them fails to start, the ones
already started are ended too, in the reverse order of their start."""

from __future__ import annotations

import signal
from collections.abc import Iterator

from netfate.proc import alive
from netfate.supervisor.process import Probe, Supervised


class Group:
    """An ordered set of supervised processes. ``start`` adds and starts one; ``add`` takes
    one that another member starts and records itself (the orchestrator's nats-server), so it
    is ended with the group even when its parent could not end it. Use as a context manager:
    leaving it ends every member."""

    def __init__(self) -> None:
        self.members: list[Supervised] = []
        self.grace: dict[str, tuple[float, int]] = {}
        self.started: dict[str, int] = {}  # every PID seen, for leftovers()

    def start(self, proc: Supervised, ready: Probe | None = None, timeout: float = 10.0, *,
              grace: float = 5.0, sig: int = signal.SIGTERM) -> Supervised:
        """Start ``proc`` (see Supervised.start) as a member, ended with ``sig`` and
        ``grace``. If it fails, every member is ended, then the error raised."""
        self.members.append(proc)
        self.grace[proc.name] = (grace, sig)
        try:
            self.started[proc.name] = proc.start(ready, timeout)
        except BaseException:
            self.stop()
            raise
        return proc

    def add(self, proc: Supervised, *, grace: float = 5.0, sig: int = signal.SIGTERM) -> None:
        """A member started elsewhere: ended by its recorded PID."""
        self.members.append(proc)
        self.grace[proc.name] = (grace, sig)

    def note(self) -> None:
        """Remember the PIDs of members started elsewhere, now that they run."""
        for m in self.members:
            pid = m.pid
            if pid is not None:
                self.started.setdefault(m.name, pid)

    def release(self) -> None:
        """Keep the members running: leaving the context no longer ends them (a group
        whose every start succeeded and that should outlive the call)."""
        self.members.clear()

    def stop(self) -> list[int]:
        """End every member, last started first. Returns the PIDs ended."""
        self.note()
        ended = []
        for m in reversed(self.members):
            grace, sig = self.grace.get(m.name, (5.0, signal.SIGTERM))
            pid = m.stop(grace, sig)
            if pid is not None:
                ended.append(pid)
        return ended

    def leftovers(self) -> list[int]:
        """PIDs seen in this group that still run (after stop(): none, or a bug)."""
        return [pid for pid in self.started.values() if alive(pid)]

    def __iter__(self) -> Iterator[Supervised]:
        return iter(self.members)

    def __enter__(self) -> Group:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
