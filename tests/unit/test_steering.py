"""The steering core against a fake flow table, without root (Faucet style)."""

import pytest
from pydantic import ValidationError

from netfate.steering import FlowTable, Match, Packet, TSRule, chain_rules, to_flowmod

MAC = "02:aa:00:00:00:01"
OTHER = "02:aa:00:00:00:02"
GW = "02:bb:00:00:00:01"


def table_with(rules: list[TSRule]) -> FlowTable:
    t = FlowTable()
    t.apply(TSRule(rule_id="base", priority=1, output=("normal",)))
    for r in rules:
        t.apply(r)
    return t


def test_chain_of_two_nfs_is_crossed_in_order_both_ways() -> None:
    hops = [("fw-lan", "fw-wan"), ("ins-lan", "ins-wan")]
    t = table_with(chain_rules("u1", MAC, "access", "uplink", hops))
    # upstream: access -> fw -> inspector -> uplink
    path, port = [], "access"
    pkt = dict(eth_src=MAC, eth_dst=GW)
    for _ in range(3):
        out = t.forward(Packet(in_port=port, **pkt))
        path.append(out[0])
        port = {"fw-lan": "fw-wan", "ins-lan": "ins-wan"}.get(out[0], out[0])
    assert path == ["fw-lan", "ins-lan", "uplink"]
    # downstream: uplink -> inspector -> fw -> access
    path, port = [], "uplink"
    pkt = dict(eth_src=GW, eth_dst=MAC)
    for _ in range(3):
        out = t.forward(Packet(in_port=port, **pkt))
        path.append(out[0])
        port = {"ins-wan": "ins-lan", "fw-wan": "fw-lan"}.get(out[0], out[0])
    assert path == ["ins-wan", "fw-wan", "access"]


def test_other_users_traffic_is_not_steered() -> None:
    t = table_with(chain_rules("u1", MAC, "access", "uplink", [("l", "w")]))
    assert t.forward(Packet(in_port="access", eth_src=OTHER, eth_dst=GW)) == ("normal",)
    assert t.forward(Packet(in_port="uplink", eth_src=GW, eth_dst=OTHER)) == ("normal",)


def test_higher_priority_classifier_wins_for_http_only() -> None:
    t = table_with(chain_rules("u1", MAC, "access", "uplink", [("fw-l", "fw-w")]))
    t.apply(TSRule(rule_id="http", priority=200,
                   match=Match(in_port="access", eth_src=MAC, ip_proto=6, tp_dst=80),
                   output=("ins-l",)))
    http = Packet(in_port="access", eth_src=MAC, ipv4_dst="10.0.0.1", ip_proto=6, tp_dst=80)
    ssh = Packet(in_port="access", eth_src=MAC, ipv4_dst="10.0.0.1", ip_proto=6, tp_dst=22)
    assert t.forward(http) == ("ins-l",)
    assert t.forward(ssh) == ("fw-l",)


def test_no_rule_means_drop_and_removal_restores() -> None:
    t = FlowTable()
    assert t.forward(Packet(in_port="x")) == ()
    t.apply(TSRule(rule_id="r", match=Match(in_port="x"), output=("y",)))
    assert t.forward(Packet(in_port="x")) == ("y",)
    t.remove("r")
    assert t.forward(Packet(in_port="x")) == ()


def test_flowmod_adds_openflow_prerequisites() -> None:
    r = TSRule(rule_id="r", priority=50,
               match=Match(in_port="a", ipv4_dst="10.1.0.0/16", ip_proto=17, tp_dst=53),
               output=("b",))
    f = to_flowmod(r, {"a": 3, "b": 4})
    assert f.match == {"in_port": 3, "eth_type": 0x0800, "ipv4_dst": ("10.1.0.0", "255.255.0.0"),
                       "ip_proto": 17, "udp_dst": 53}
    assert f.outputs == (4,) and f.priority == 50 and f.cookie == r.cookie()
    tcp = to_flowmod(TSRule(rule_id="t", match=Match(ip_proto=6, tp_dst=80,
                                                     ipv4_src="10.0.0.1")), {})
    assert tcp.match["tcp_dst"] == 80 and tcp.match["ipv4_src"] == "10.0.0.1"


def test_flowmod_reserved_outputs_and_drop() -> None:
    assert to_flowmod(TSRule(rule_id="n", output=("normal",)), {}).outputs == ("normal",)
    assert to_flowmod(TSRule(rule_id="d", match=Match(in_port="a")), {"a": 1}).outputs == ()
    hairpin = TSRule(rule_id="h", match=Match(in_port="a"), output=("a",))
    assert to_flowmod(hairpin, {"a": 1}).outputs == ("in_port",)


def test_flowmod_unknown_port_and_port_without_proto() -> None:
    with pytest.raises(KeyError):
        to_flowmod(TSRule(rule_id="r", match=Match(in_port="zz"), output=("a",)), {"a": 1})
    with pytest.raises(ValueError, match="ip_proto"):
        to_flowmod(TSRule(rule_id="r", match=Match(tp_dst=80), output=("a",)), {"a": 1})


@pytest.mark.parametrize("bad", [
    {"eth_src": "not-a-mac"}, {"ipv4_dst": "10.0.0.300"}, {"tp_dst": 70000}, {"bogus": 1},
])
def test_bad_matches_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Match(**bad)


def test_cookies_are_stable_and_distinct() -> None:
    a = TSRule(rule_id="user1:up:0")
    assert a.cookie() == TSRule(rule_id="user1:up:0").cookie()
    assert a.cookie() != TSRule(rule_id="user1:up:1").cookie()
    assert 0 < a.cookie() < 2**63


def test_nf_own_address_is_reached_from_the_uplink() -> None:
    nf_mac = "02:cc:00:00:00:09"
    t = table_with(chain_rules("u1", MAC, "access", "uplink", [("l", "w")],
                               own=[(nf_mac, "w")]))
    assert t.forward(Packet(in_port="uplink", eth_src=GW, eth_dst=nf_mac)) == ("w",)
