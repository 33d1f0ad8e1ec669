"""Probe rules (netfate.troubleshoot.splice): where an operator's probe goes in the user's
path, and that removing its rules gives the user's path back unchanged. Pure."""

from __future__ import annotations

from netfate.controller.model import Match, TSRule
from netfate.controller.ts_rules import chain_rules
from netfate.troubleshoot import splice

MAC = "02:fa:00:00:00:01"
PMAC = "02:fa:00:00:00:99"
ACCESS, UPLINK = "fate-h-user1-p", "fate-cpe1-up"
FW = ("fw-lan", "fw-wan")


def _by_id(rules: list[TSRule]) -> dict[str, TSRule]:
    return {r.rule_id: r for r in rules}


def test_at_access_puts_the_probe_in_front_of_the_users_chain() -> None:
    user = chain_rules("user:user1", MAC, ACCESS, UPLINK, [FW])
    rules = _by_id(splice.at_access("op-ts:user1:cpe", MAC, ACCESS, UPLINK, user,
                                    "p-lan", "p-wan", PMAC))
    assert rules["op-ts:user1:cpe:in"].match == Match(in_port=ACCESS, eth_src=MAC)
    assert rules["op-ts:user1:cpe:in"].output == ("p-lan",)
    assert rules["op-ts:user1:cpe:on"].output == ("fw-lan",)  # on into the user's chain
    # what the chain hands to the user goes through the probe first
    assert rules["op-ts:user1:cpe:down"].match == Match(in_port="fw-lan")
    assert rules["op-ts:user1:cpe:down"].output == ("p-wan",)
    assert rules["op-ts:user1:cpe:back"].output == (ACCESS,)
    # replies to the probe cross the user's chain back, and end in the probe
    own = sorted((r.match.in_port, r.output) for k, r in rules.items() if ":own:" in k)
    assert own == [(UPLINK, ("fw-wan",))]
    assert all(r.match.eth_dst == PMAC for k, r in rules.items() if ":own:" in k)
    # above the user's rules, so removing them restores the user's path as it was
    assert min(r.priority for r in rules.values()) > max(r.priority for r in user)
    assert all(k.startswith("op-ts:user1:cpe:") for k in rules)


def test_at_access_for_a_user_steered_without_nfs() -> None:
    user = chain_rules("user:user1", MAC, ACCESS, UPLINK, [])
    rules = _by_id(splice.at_access("t", MAC, ACCESS, UPLINK, user, "p-lan", "p-wan", PMAC))
    assert rules["t:on"].output == (UPLINK,)
    assert rules["t:down"].match == Match(in_port=UPLINK, eth_dst=MAC)
    assert rules["t:own:0"].match == Match(in_port=UPLINK, eth_dst=PMAC)
    assert rules["t:own:0"].output == ("p-wan",)


def test_at_access_for_a_user_switched_by_l2() -> None:
    rules = _by_id(splice.at_access("t", MAC, ACCESS, UPLINK, [], "p-lan", "p-wan", PMAC))
    assert rules["t:on"].output == (UPLINK,)
    assert rules["t:down"].match == Match(eth_dst=MAC)
    assert rules["t:own"].match == Match(in_port=UPLINK, eth_dst=PMAC)


def test_the_probes_own_way_out_wins_over_its_catch_alls() -> None:
    # a frame leaving the probe's lan (toward the user) must not be caught by `down`
    rules = _by_id(splice.at_access("t", MAC, ACCESS, UPLINK, [], "p-lan", "p-wan", PMAC))
    assert rules["t:back"].priority > rules["t:down"].priority
    pe = _by_id(splice.at_ingress("t", MAC, "fate-core-cpe1", "fate-h-inet-p", "p-lan", "p-wan",
                                    PMAC))
    assert pe["t:back"].priority > pe["t:down"].priority
    assert pe["t:on"].priority > pe["t:down"].priority


def test_at_ingress_and_beside() -> None:
    pe = _by_id(splice.at_ingress("t", MAC, "fate-core-cpe1", "fate-h-inet-p", "p-lan", "p-wan",
                                    PMAC))
    assert pe["t:in"].match == Match(in_port="fate-core-cpe1", eth_src=MAC)
    assert pe["t:on"].output == ("fate-h-inet-p",)
    assert pe["t:back"].output == ("fate-core-cpe1",)
    dc = _by_id(splice.beside("t", "fate-dc-up", "p-lan", "p-wan", PMAC))
    assert dc["t:on"].output == ("fate-dc-up",) and dc["t:lan"].output == ()
    assert dc["t:own"].match == Match(in_port="fate-dc-up", eth_dst=PMAC)
