"""The orchestrator's troubleshooting probes on the network: addresses, MACs and the TS rules
carrying their own traffic (netfate.orchestrator.troubleshoot_probes). Pure."""

from __future__ import annotations

import pytest

from netfate.bus.messages import SwitchPorts
from netfate.controller.model import TSRule
from netfate.errors import InvalidInput
from netfate.orchestrator import troubleshoot_probes as probes

# The default testbed: core (PE, the internet host's port), dc and two CPEs under it.
PORTS = {
    "core": SwitchPorts(infra=["fate-core-c1", "fate-core-c2", "fate-core-dc", "fate-h-inet"],
                        links={"fate-core-c1": "cpe1", "fate-core-c2": "cpe2",
                               "fate-core-dc": "dc"}),
    "cpe1": SwitchPorts(uplink="fate-cpe1-up", access=["fate-c1-h1"],
                        links={"fate-cpe1-up": "core"},
                        stations={"02:00:00:00:01:01": "fate-c1-h1"}),
    "dc": SwitchPorts(uplink="fate-dc-up", links={"fate-dc-up": "core"}),
}
MAC = "02:aa:00:00:00:01"


def test_addresses_come_from_the_top_never_the_gateway_or_a_users() -> None:
    got = probes.addresses("10.90.0.0/16", "10.90.255.253", {"10.90.255.254"}, 3)
    assert got == ["10.90.255.252/16", "10.90.255.251/16", "10.90.255.250/16"]
    assert probes.addresses("192.0.2.0/30", "192.0.2.1", set(), 1) == ["192.0.2.2/30"]


def test_too_few_free_addresses_or_a_bad_subnet_is_named() -> None:
    with pytest.raises(InvalidInput, match=r"no 2 free addresses at the top of 192.0.2.0/30"):
        probes.addresses("192.0.2.0/30", "192.0.2.1", set(), 2)
    with pytest.raises(InvalidInput, match="probe subnet 'nonsense'"):
        probes.addresses("nonsense", "192.0.2.1", set(), 1)


def test_a_probes_mac_is_a_stable_local_unicast_one_per_address() -> None:
    a, b = probes.mac_of("10.90.255.254/16"), probes.mac_of("10.90.255.254")
    assert a == b and a.startswith("02:") and len(a.split(":")) == 6
    assert probes.mac_of("10.90.255.253") != a
    assert not int(a[:2], 16) & 1


def _check(rules: dict[str, list[dict]]) -> dict[str, dict[str, TSRule]]:
    """Every rule is one the controller's model takes; by node, by rule id."""
    return {n: {r["rule_id"]: TSRule.model_validate(r) for r in rs} for n, rs in rules.items()}


def test_a_cpe_probe_goes_out_of_the_uplink_and_is_reached_back_through_the_core() -> None:
    iid = "cpe1-operator-troubleshooter"
    rules = _check(probes.rules_for(iid, "cpe1", "wan1", MAC, PORTS,
                                    ("02:00:00:00:01:01", "fate-c1-h1")))
    assert set(rules) == {"cpe1", "core"}
    cpe = rules["cpe1"]
    out = cpe[f"troubleshoot:{iid}:out"]
    assert out.match.in_port == "wan1" and out.match.eth_src == MAC
    assert out.output == ("fate-cpe1-up",)
    assert cpe[f"troubleshoot:{iid}:in"].output == ("wan1",)
    user = cpe[f"troubleshoot:{iid}:user"]
    assert user.match.eth_dst == "02:00:00:00:01:01" and user.output == ("fate-c1-h1",)
    assert user.priority > out.priority
    core = rules["core"]
    assert core[f"troubleshoot:{iid}:down:cpe1"].output == ("fate-core-c1",)
    back = core[f"troubleshoot:{iid}:back:cpe1"]
    assert back.match.in_port == "fate-core-c1" and back.output == ("in_port",)
    # Only the probe's own MAC: nothing else on any switch is touched.
    for rs in rules.values():
        for r in rs.values():
            assert MAC in (r.match.eth_src, r.match.eth_dst)


def test_at_the_top_a_probe_goes_out_of_the_host_ports() -> None:
    rules = _check(probes.rules_for("core-operator-troubleshooter", "core", "w", MAC, PORTS))
    assert set(rules) == {"core"}
    assert rules["core"]["troubleshoot:core-operator-troubleshooter:out"].output == \
        ("fate-h-inet",)


def test_a_node_without_a_report_or_a_way_out_is_refused() -> None:
    with pytest.raises(InvalidInput, match="pe9 has not reported"):
        probes.rules_for("x", "pe9", "w", MAC, PORTS)
    lonely = {"pe9": SwitchPorts(infra=["l1"], links={"l1": "cpe9"})}
    with pytest.raises(InvalidInput, match="no uplink and no host port"):
        probes.rules_for("x", "pe9", "w", MAC, lonely)


def test_merge_and_ids_by_node() -> None:
    a = probes.rules_for("cpe1-p", "cpe1", "w1", MAC, PORTS)
    b = probes.rules_for("dc-p", "dc", "w2", "02:aa:00:00:00:02", PORTS)
    ids = probes.rule_ids(probes.merge(a, b))
    assert sorted(ids) == ["core", "cpe1", "dc"]
    assert len(ids["core"]) == 4 and len(set(ids["core"])) == 4


def test_a_loop_in_the_reports_ends() -> None:
    loop = {"a": SwitchPorts(uplink="a-up", links={"a-up": "b", "a-dn": "b"}),
            "b": SwitchPorts(uplink="b-up", links={"b-up": "a", "b-dn": "a"})}
    rules = probes.rules_for("p", "a", "w", MAC, loop)
    assert set(rules) == {"a", "b"}
