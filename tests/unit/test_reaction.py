"""Reaction policies (pure) and the orchestrator's closed loop that runs them, with fakes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from netfate.bus.messages import Notification
from netfate.engine import reaction
from netfate.engine.reaction import Alert, BlockFloodSources, NFView, PlaceNF, UpdateNF
from netfate.orchestrator.closed_loop import ClosedLoop

FLOOD = Alert(node="cpe1", type="flood", owner="iot1", nf="packet-inspector",
              severity="critical", source="10.90.1.11", ts=100.0)
RULE = {"action": "deny", "direction": "out", "proto": "any", "src": "10.90.1.11/32"}


def fw(node: str = "cpe1", rules: list[dict[str, Any]] | None = None,
       iid: str = "cpe1-iot1-firewall") -> NFView:
    return NFView(iid, "firewall", node, "iot1", {"default_out": "allow",
                                                  "rules": list(rules or [])})


def test_a_flood_becomes_a_drop_rule_first_in_the_owners_firewall() -> None:
    old = {"action": "allow", "proto": "tcp", "dport": 443}
    out = BlockFloodSources().react(FLOOD, [fw(rules=[old])])
    assert out == [UpdateNF("cpe1-iot1-firewall", {"default_out": "allow",
                                                   "rules": [RULE, old]},
                            "flood from 10.90.1.11 reported by packet-inspector on cpe1")]


def test_the_firewall_on_the_reporting_node_is_preferred() -> None:
    out = BlockFloodSources().react(FLOOD, [fw("dc", iid="a"), fw("cpe1", iid="b")])
    assert [r.instance_id for r in out if isinstance(r, UpdateNF)] == ["b"]


def test_no_firewall_places_one_with_the_rule() -> None:
    inspector = NFView("x", "packet-inspector", "cpe1", "iot1", {})
    assert BlockFloodSources().react(FLOOD, [inspector]) == [
        PlaceNF("iot1", "cpe1", "firewall", {"rules": [RULE]},
                "flood from 10.90.1.11 reported by packet-inspector on cpe1")]


@pytest.mark.parametrize("alert", [
    Alert(node="cpe1", type="port-scan", owner="iot1", severity="warning", source="10.0.0.1"),
    Alert(node="cpe1", type="flood", owner="iot1", severity="warning", source="10.0.0.1"),
    Alert(node="cpe1", type="flood", owner=None, severity="critical", source="10.0.0.1"),
    Alert(node="cpe1", type="flood", owner="iot1", severity="critical", source="fe80::1"),
    Alert(node="cpe1", type="flood", owner="iot1", severity="critical", source=None),
])
def test_other_notifications_get_no_reaction(alert: Alert) -> None:
    assert BlockFloodSources().react(alert, [fw()]) == []


def test_a_source_blocked_already_is_not_blocked_twice() -> None:
    assert BlockFloodSources().react(FLOOD, [fw(rules=[RULE])]) == []


def test_registry_finds_the_builtin_and_names_the_known_ones() -> None:
    assert reaction.get_reaction_policy("block-flood-sources").name == "block-flood-sources"
    with pytest.raises(KeyError, match="known: block-flood-sources"):
        reaction.get_reaction_policy("nope")
    with pytest.raises(TypeError):
        reaction.register(object())  # type: ignore[arg-type]


class FakeDB:
    def __init__(self, nfs: list[NFView]) -> None:
        self.nfs = nfs

    async def run(self, fn: Any, *args: Any) -> Any:
        return self.nfs


class FakeCoordinator:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def new_op(self, op: Any, iid: str, params: dict[str, Any]) -> str:
        self.calls.append(("op", str(op), iid))
        return "op-1"

    async def update(self, op_id: str, iid: str, config: dict[str, Any]) -> bool:
        self.calls.append(("update", iid, config["rules"][0]["src"]))
        return True

    async def instantiate(self, op_id: str, node: str, owner: str, nf: str, iid: str,
                          config: dict[str, Any] | None = None) -> bool:
        self.calls.append(("instantiate", node, owner, nf, iid))
        return True


class FakeHub:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, data))


def run_loop(nfs: list[NFView], n: Notification) -> tuple[list[dict[str, Any]],
                                                          FakeCoordinator, FakeHub]:
    coord, hub = FakeCoordinator(), FakeHub()
    loop = ClosedLoop(FakeDB(nfs), coord, hub, "block-flood-sources")  # type: ignore[arg-type]
    return asyncio.run(loop.on_notification(n)), coord, hub


NOTE = Notification(node="cpe1", nf_id="i", nf="packet-inspector", owner="iot1", type="flood",
                    severity="critical", source="10.90.1.11", detail={"pps": 5000}, ts=100.0)


INSPECTOR = NFView("i", "packet-inspector", "cpe1", "iot1", {})


def test_closed_loop_runs_an_update_operation_and_publishes_it() -> None:
    done, coord, hub = run_loop([fw(), INSPECTOR], NOTE)
    assert coord.calls == [("op", "UPDATE", "cpe1-iot1-firewall"),
                           ("update", "cpe1-iot1-firewall", "10.90.1.11/32")]
    assert done[0]["action"] == "update" and done[0]["ok"] is True
    assert hub.events == [("reaction", done[0])]


def test_closed_loop_places_a_firewall_when_there_is_none() -> None:
    done, coord, _ = run_loop([INSPECTOR], NOTE)
    assert coord.calls[1][:4] == ("instantiate", "cpe1", "iot1", "firewall")
    assert done[0]["action"] == "place"


def test_closed_loop_ignores_notifications_without_an_owner() -> None:
    done, coord, _ = run_loop([fw()], NOTE.model_copy(update={"owner": None}))
    assert done == [] and coord.calls == []


@pytest.mark.parametrize("update", [
    {"nf_id": "someone-elses-inspector"},  # an NF naming another tenant as its owner
    {"nf_id": None},
    {"node": "cpe2"},  # the owner's NF, but not on the node that relayed it
])
def test_closed_loop_ignores_a_notification_not_from_the_owners_nf_there(
        update: dict[str, Any]) -> None:
    done, coord, _ = run_loop([fw(), INSPECTOR], NOTE.model_copy(update=update))
    assert done == [] and coord.calls == []


def test_a_full_firewall_drops_its_oldest_block_rule_never_the_owners_own() -> None:
    own = [{"action": "allow", "proto": "tcp", "dport": 1000 + i}
           for i in range(reaction.MAX_FIREWALL_RULES - 2)]
    old_blocks = [{**RULE, "src": "10.90.9.1/32"}, {**RULE, "src": "10.90.9.2/32"}]
    (upd,) = BlockFloodSources().react(FLOOD, [fw(rules=[*old_blocks, *own])])
    assert isinstance(upd, UpdateNF)
    # the oldest block (the last of them) went; the owner's last rule stays
    assert upd.config["rules"] == [RULE, old_blocks[0], *own]


def test_a_firewall_full_of_the_owners_own_rules_gets_no_reaction() -> None:
    own = [{"action": "allow", "proto": "tcp", "dport": 1000 + i}
           for i in range(reaction.MAX_FIREWALL_RULES)]
    assert BlockFloodSources().react(FLOOD, [fw(rules=own)]) == []
