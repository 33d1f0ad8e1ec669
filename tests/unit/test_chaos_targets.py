"""`netfate chaos --target`: a prefix no testbed process can have is refused before anything
is taken down or started (it used to give runs with no fault, each reported clean)."""

from __future__ import annotations

import pytest

from netfate.chaos import nemesis, runner
from netfate.errors import InvalidInput
from netfate.testbed.topology import load_topology


@pytest.mark.parametrize("ok", ["orchestrator", "agent-", "agent-cpe1", "access-", "nats",
                                "freeradius", "dnsmasq-", "cpe1-user1-firewall", "cpe1"])
def test_prefixes_of_testbed_processes_and_nf_ids_are_accepted(ok: str) -> None:
    nemesis.check_targets(load_topology(), (ok,))


@pytest.mark.parametrize(("bad", "match"), [
    ("zzz", "names no process"), ("orchestratorX", "names no process"),
    ("agent-nosuchnode", "names no process"), ("", "1-128 printable"),
    ("agent cpe1", "1-128 printable"), ("a\nb", "1-128 printable"), ("x" * 200, "1-128"),
])
def test_other_targets_are_refused_before_any_run(bad: str, match: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def no_run(*_: object) -> None:
        raise AssertionError("a run started")
    monkeypatch.setattr(runner, "one_run", no_run)
    with pytest.raises(InvalidInput, match=match):
        runner.run_chaos(1, 1, load_topology(), runner.ChaosSettings(targets=("agent-", bad)))
