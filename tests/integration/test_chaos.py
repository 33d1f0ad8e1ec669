"""Issue #16, faults Jepsen's way, CI-sized: a few chaos runs with a fixed seed (each on a
fresh testbed, one process of it killed with SIGKILL mid-workload and brought back) end
with no violation, and nothing is left after each run's `testbed down`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from netfate.chaos.runner import ChaosSettings, run_chaos
from netfate.testbed import lifecycle
from netfate.testbed.topology import load_topology


@pytest.fixture
def clean(testbed_up: None) -> Iterator[None]:
    lifecycle.down()
    try:
        yield
    finally:
        lifecycle.down()
        # as the session's fixture expects it (it takes it down at the end)
        lifecycle.up(load_topology(), services=False)


def test_three_runs_with_a_fault_each_end_consistent(clean: None) -> None:
    out = run_chaos(3, seed=16, cs=ChaosSettings(steps=10))
    found = {f"run {r['run']} (seed {r['seed']}, fault {[f['target'] for f in r['faults']]})":
             r["violations"] for r in out["reports"] if r["violations"]}
    assert out["faults"] == 3
    assert found == {}, found
