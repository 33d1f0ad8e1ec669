"""A node without a controller: its TS rules kept per LSI and converged by the pipeline's
own build + sync, checked on the fake switch (no root)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from netfate.controller.fake import FakeSwitch, ip_packet
from netfate.controller.flowmod import FlowMod
from netfate.controller.model import Match, TSRule
from netfate.controller.ofmsg import from_stats
from netfate.controller.ts_rules import chain_rules
from netfate.drivers.local_steering import LocalSteering
from netfate.errors import Conflict, DriverError, NotFound

PORTS = {"access": 1, "uplink": 2, "fw-l": 3, "fw-w": 4}
MAC, GW = "02:aa:00:00:00:01", "02:bb:00:00:00:01"
BASE = TSRule(rule_id="base:l2", priority=1, output=("normal",))


class FakeChannel:
    """OpenFlowChannel's flow calls, on a fake switch."""

    def __init__(self, sw: FakeSwitch) -> None:
        self.sw = sw
        self.sent = 0
        self.dumps = 0
        self.sessions = 1
        self.fail = False

    def add_flows(self, flows: list[FlowMod]) -> None:
        if self.fail:
            raise DriverError("the switch refused")
        self.sw.apply(flows)
        self.sent += len(flows)

    def delete_strict(self, flows: list[FlowMod]) -> None:
        self.sw.delete(flows)
        self.sent += len(flows)

    def flows(self) -> list[FlowMod]:
        self.dumps += 1
        return [from_stats(s) for s in self.sw.flow_stats()]


def make(tmp_path: Path, controlled: bool = False) -> tuple[LocalSteering, FakeChannel, list[int]]:
    ch = FakeChannel(FakeSwitch(PORTS))
    settled: list[int] = []
    ls = LocalSteering(tmp_path, lambda lsi: ch, lambda lsi: dict(PORTS),  # type: ignore[arg-type,return-value]
                       lambda: settled.append(1), lambda lsi: controlled)
    return ls, ch, settled


def out(ch: FakeChannel, p: dict[str, Any]) -> list[str]:
    return [port for port, _ in ch.sw.process(p)]


def test_rules_are_kept_converged_and_removed(tmp_path: Path) -> None:
    ls, ch, settled = make(tmp_path)
    ls.apply("br", [BASE])
    pkt = ip_packet("access", MAC, GW, "10.0.0.2", "10.0.0.1")
    assert out(ch, pkt) == ["normal"]
    rules = chain_rules("u", MAC, "access", "uplink", [("fw-l", "fw-w")])
    ls.apply("br", rules)
    assert out(ch, pkt) == ["fw-l"] and settled
    assert {r.rule_id for r in ls.rules_of("br")} == {"base:l2", *(r.rule_id for r in rules)}
    sent = ch.sent
    ls.apply("br", rules)  # the same again: nothing to send
    assert ch.sent == sent
    ls.delete("br", [r.rule_id for r in rules] + ["unknown"])
    assert out(ch, pkt) == ["normal"] and [r.rule_id for r in ls.rules_of("br")] == ["base:l2"]


def test_a_rule_on_a_missing_port_changes_nothing(tmp_path: Path) -> None:
    ls, ch, _ = make(tmp_path)
    ls.apply("br", [BASE])
    before = dict(ch.sw.flows)
    with pytest.raises(NotFound, match="port nope"):
        ls.apply("br", [TSRule(rule_id="x", match=Match(in_port="nope"), output=("uplink",))])
    assert ch.sw.flows == before and [r.rule_id for r in ls.rules_of("br")] == ["base:l2"]


def test_a_replaced_match_leaves_no_old_flow_and_foreign_flows_stay(tmp_path: Path) -> None:
    ls, ch, _ = make(tmp_path)
    foreign = FlowMod(cookie=0x5EED, priority=7, match={"in_port": 4}, outputs=())
    ch.sw.apply([foreign])
    ls.apply("br", [TSRule(rule_id="t", match=Match(in_port="access"), output=("uplink",))])
    ls.apply("br", [TSRule(rule_id="t", match=Match(in_port="access", ip_proto=6, tp_dst=80),
                           output=("uplink",))])
    ts = [f for f in ch.sw.flows.values() if f.priority > 1000]
    assert len(ts) == 1 and ts[0].match.get("tcp_dst") == 80
    assert foreign in ch.sw.flows.values()


def test_an_lsi_under_a_controller_is_refused(tmp_path: Path) -> None:
    ls, ch, _ = make(tmp_path, controlled=True)
    with pytest.raises(Conflict, match="orchestrator"):
        ls.apply("br", [BASE])
    assert not ch.sw.flows and ls.rules_of("br") == []


def _switch_matches_rules(ls: LocalSteering, ch: FakeChannel) -> None:
    """What the switch holds is what a dump-and-diff from scratch would leave: nothing to do."""
    fresh = LocalSteering(ls.rules_dir, lambda lsi: ch,  # type: ignore[arg-type,return-value]
                          lambda lsi: dict(PORTS), lambda: None)
    assert fresh.sync("br").empty


def test_changes_do_not_ask_the_switch_for_its_flows_again(tmp_path: Path) -> None:
    """After the first change, the flows this process installed stand for the switch's (no
    dump per change: ~1-1.5 ms each, growing with the node's NFs), and the switch stays
    exactly converged."""
    ls, ch, _ = make(tmp_path)
    ls.apply("br", [BASE])
    assert ch.dumps == 1
    for i in range(5):
        ls.apply("br", chain_rules(f"u{i}", f"02:aa:00:00:00:0{i}", "access", "uplink",
                                   [("fw-l", "fw-w")]))
    ls.delete("br", [r.rule_id for r in ls.rules_of("br") if r.rule_id.startswith("u3")])
    assert ch.dumps == 1
    _switch_matches_rules(ls, ch)
    # the file holds every rule as it is, though only new ones were serialised again
    on_disk = json.loads((tmp_path / "br.json").read_text())
    assert on_disk == {r.rule_id: r.model_dump(mode="json") for r in ls.rules_of("br")}


def test_rules_another_process_changed_are_read_again_with_the_switchs_flows(
        tmp_path: Path) -> None:
    """Two processes share an LSI's rules file: each notices the other's change (the file is
    not the one it wrote) and converges from what the switch really has."""
    ls, ch, _ = make(tmp_path)
    other = LocalSteering(tmp_path, lambda lsi: ch,  # type: ignore[arg-type,return-value]
                          lambda lsi: dict(PORTS), lambda: None)
    ls.apply("br", [BASE])
    mine = chain_rules("me", MAC, "access", "uplink", [("fw-l", "fw-w")])
    ls.apply("br", mine)
    other.delete("br", [r.rule_id for r in mine])  # its flows leave the switch
    theirs = [TSRule(rule_id="t", match=Match(in_port="access"), output=("uplink",))]
    other.apply("br", theirs)
    dumps = ch.dumps
    ls.apply("br", [TSRule(rule_id="x", priority=5, match=Match(in_port="uplink"),
                           output=("access",))])
    assert ch.dumps == dumps + 1
    assert {r.rule_id for r in ls.rules_of("br")} == {"base:l2", "t", "x"}
    _switch_matches_rules(ls, ch)


@pytest.mark.parametrize("how", ["restart", "refused"])
def test_after_a_switch_restart_or_a_failed_change_the_switch_is_asked_again(
        tmp_path: Path, how: str) -> None:
    """A new OpenFlow session (ovs-vswitchd restarted with no flows) or a change that failed
    half way: the next change dumps the switch's flows and puts back every missing one."""
    ls, ch, _ = make(tmp_path)
    rules = chain_rules("u", MAC, "access", "uplink", [("fw-l", "fw-w")])
    ls.apply("br", [BASE, *rules])
    if how == "restart":
        ch.sw.flows.clear()
        ch.sessions += 1
    else:
        ch.fail = True
        with pytest.raises(DriverError):
            ls.apply("br", [TSRule(rule_id="y", priority=5, match=Match(in_port="uplink"),
                                   output=("access",))])
        ch.fail = False
        ch.sw.flows.clear()  # whatever the switch kept of it, the next change finds out
    dumps = ch.dumps
    ls.apply("br", [TSRule(rule_id="x", priority=5, match=Match(in_port="fw-w"),
                           output=("uplink",))])
    assert ch.dumps == dumps + 1
    pkt = ip_packet("access", MAC, GW, "10.0.0.2", "10.0.0.1")
    assert out(ch, pkt) == ["fw-l"]
    _switch_matches_rules(ls, ch)
