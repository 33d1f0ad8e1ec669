"""The closed loop's batching (orchestrator/closed_loop.fold): several notifications of one
owner become one operation per NF, each reaction seeing the NFs as the earlier left them."""

from __future__ import annotations

from netfate.bus.messages import Notification
from netfate.engine.reaction import NFView, PlaceNF, UpdateNF, get_reaction_policy
from netfate.orchestrator.closed_loop import alert_of, fold

KEEP = {"action": "allow", "proto": "tcp", "dport": 443}


def note(src: str, owner: str = "u1") -> Notification:
    return Notification(node="cpe1", nf_id="cpe1-u1-packet-inspector", nf="packet-inspector",
                        owner=owner, type="flood", severity="critical", source=src,
                        detail={}, ts=1.0)


def deny(src: str) -> dict[str, str]:
    return {"action": "deny", "direction": "out", "proto": "any", "src": f"{src}/32"}


def run(notes: list[Notification], nfs: list[NFView]) -> list[tuple[object, list[str]]]:
    out = fold(get_reaction_policy("block-flood-sources"), [alert_of(n) for n in notes], nfs,
               notes)
    return [(r, [n.source or "" for n in ns]) for r, ns in out]


def test_two_sources_behind_one_firewall_make_one_update_with_both_rules() -> None:
    fw = NFView("cpe1-u1-firewall", "firewall", "cpe1", "u1", {"rules": [KEEP]})
    [(r, sources)] = run([note("10.0.0.1"), note("10.0.0.2"), note("10.0.0.1")], [fw])
    assert isinstance(r, UpdateNF) and r.instance_id == fw.instance_id
    assert r.config["rules"] == [deny("10.0.0.2"), deny("10.0.0.1"), KEEP]
    assert sources == ["10.0.0.1", "10.0.0.2"]  # the repeat added nothing
    assert "10.0.0.1" in r.reason and "10.0.0.2" in r.reason


def test_no_firewall_one_placement_carrying_every_rule() -> None:
    [(r, _)] = run([note("10.0.0.1"), note("10.0.0.2")], [])
    assert isinstance(r, PlaceNF) and r.nf == "firewall" and r.node == "cpe1"
    assert r.config["rules"] == [deny("10.0.0.2"), deny("10.0.0.1")]


def test_nothing_to_do_for_sources_already_blocked() -> None:
    fw = NFView("cpe1-u1-firewall", "firewall", "cpe1", "u1", {"rules": [deny("10.0.0.1")]})
    assert run([note("10.0.0.1")], [fw]) == []
