"""Group commit for OVSDB (netfate.drivers.ovs_group_commit): concurrent transactions go as
one, each caller still gets its own outcome. Pure (the commit is a recording function)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from netfate.drivers.ovs_group_commit import GroupCommit


class Recorder:
    """A commit that takes `hold` s, refuses any transaction holding "bad", and records."""

    def __init__(self, hold: float = 0.0, timeout_on: str = "") -> None:
        self.hold = hold
        self.timeout_on = timeout_on
        self.txns: list[list[Any]] = []
        self.lock = threading.Lock()

    def __call__(self, cmds: Sequence[Any]) -> None:
        time.sleep(self.hold)
        with self.lock:
            self.txns.append(list(cmds))
        if self.timeout_on and self.timeout_on in cmds:
            raise TimeoutError("not applied")
        if "bad" in cmds:
            raise ValueError(f"refused: {list(cmds)}")


def run_all(gc: GroupCommit, reqs: list[list[str]]) -> dict[int, BaseException | None]:
    out: dict[int, BaseException | None] = {}

    def one(i: int) -> None:
        try:
            gc.submit(reqs[i])
            out[i] = None
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(reqs))]
    for t in threads:
        t.start()
        time.sleep(0.005)  # in order, while the first is in flight
    for t in threads:
        t.join(5)
    return out


def test_one_caller_is_one_transaction() -> None:
    rec = Recorder()
    gc = GroupCommit(rec)
    gc.submit(["a", "b"])
    gc.submit(["c"])
    assert rec.txns == [["a", "b"], ["c"]] and gc.transactions == 2


def test_those_asking_while_one_is_in_flight_go_together_in_order() -> None:
    rec = Recorder(hold=0.1)
    gc = GroupCommit(rec)
    out = run_all(gc, [["p1"], ["p2"], ["p3"], ["p4"]])
    assert all(v is None for v in out.values())
    assert rec.txns[0] == ["p1"] and rec.txns[1] == ["p2", "p3", "p4"]
    assert gc.transactions == 2 and gc.batched == 3


def test_a_refused_request_fails_only_its_caller() -> None:
    rec = Recorder(hold=0.1)
    gc = GroupCommit(rec)
    out = run_all(gc, [["p1"], ["p2"], ["bad"], ["p4"]])
    assert out[0] is None and out[1] is None and out[3] is None
    assert isinstance(out[2], ValueError) and "bad" in str(out[2])
    # the group was tried, then each alone
    assert ["p2", "bad", "p4"] in rec.txns and ["p2"] in rec.txns and ["p4"] in rec.txns


def test_a_failure_not_about_the_requests_is_every_members_without_retries() -> None:
    rec = Recorder(hold=0.1, timeout_on="p3")
    gc = GroupCommit(rec, alone=lambda exc: not isinstance(exc, TimeoutError))
    out = run_all(gc, [["p1"], ["p2"], ["p3"]])
    assert out[0] is None
    assert isinstance(out[1], TimeoutError) and isinstance(out[2], TimeoutError)
    assert rec.txns == [["p1"], ["p2", "p3"]]


def test_a_lone_failure_is_raised_as_is() -> None:
    gc = GroupCommit(Recorder())
    with pytest.raises(ValueError, match="refused"):
        gc.submit(["bad"])
    gc.submit(["fine"])  # and the next one goes
