"""Group commit for OVSDB: transactions asked for at the same time go as one.

ovs-vswitchd applies every OVSDB transaction with a whole reconfiguration of its bridges,
and ovsdbapp waits for it (cur_cfg) before the next one: with several NFs created at once
(the density benchmarks, a node's agent under load) their port changes queued one
reconfiguration each. Here, while one transaction is in flight, the ones asked for meanwhile
wait, then go together in the next: the databases' group commit, applied to OVSDB. No caller
waits longer than its own transaction would have behind the one in flight.

A combined transaction fails as a whole (OVSDB transactions are atomic), so when one of
several is refused, each is run again alone and gets its own outcome: one caller's bad
request never fails another's. (A failure `alone` says is not about the requests, such as
a timeout, is every member's.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any


class _Request:
    __slots__ = ("cmds", "done", "error")

    def __init__(self, cmds: Sequence[Any]) -> None:
        self.cmds = cmds
        self.done = False
        self.error: BaseException | None = None


class GroupCommit:
    """`submit(cmds)` runs `commit(cmds)` (one OVSDB transaction of those commands),
    coalescing the submissions that arrive while another is committing. submit raises
    what `commit` raised for that caller's own commands."""

    def __init__(self, commit: Callable[[Sequence[Any]], None], *,
                 alone: Callable[[Exception], bool] = lambda _: True) -> None:
        self._commit = commit
        self._alone = alone  # whether a group's failure is worth each member alone
        self._cv = threading.Condition()
        self._busy = False                # a transaction is in flight
        self._queue: list[_Request] = []
        self.transactions = 0             # committed, for tests and figures
        self.batched = 0                  # submissions that went with others

    def submit(self, cmds: Sequence[Any]) -> None:
        req = _Request(cmds)
        group: list[_Request] = []
        with self._cv:
            self._queue.append(req)
            while self._busy and not req.done:
                self._cv.wait()
            if not req.done:  # nothing in flight and ours not taken: lead the next group
                self._busy = True
                group, self._queue = self._queue, []
        if group:
            try:
                self._run(group)  # outside the lock: the others queue meanwhile
            finally:
                with self._cv:
                    for r in group:
                        r.done = True
                    self._busy = False
                    self._cv.notify_all()
        if req.error is not None:
            raise req.error

    def _run(self, group: list[_Request]) -> None:
        try:
            self._commit([c for r in group for c in r.cmds])
            self.transactions += 1
            if len(group) > 1:
                self.batched += len(group)
        except Exception as exc:
            if len(group) == 1 or not self._alone(exc):
                for r in group:
                    r.error = exc
                return
            for r in group:  # each alone, for its own outcome
                try:
                    self._commit(r.cmds)
                    self.transactions += 1
                except Exception as one:
                    r.error = one
