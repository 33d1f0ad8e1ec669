"""TS rules (Table I) and chains written as TS rules, rendered by the controller's pipeline and
followed through the fake multi-table switch, without root (Faucet style)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from netfate.controller import pipeline as pl
from netfate.controller.fake import FakeSwitch, ip_packet
from netfate.controller.flows import build
from netfate.controller.model import Client, Match, ServicesAttachment, SwitchState, TSRule
from netfate.controller.ofmsg import from_stats
from netfate.controller.sync import diff
from netfate.controller.ts_rules import chain_rules, rule_cookie, rule_flow

MAC = "02:aa:00:00:00:01"
OTHER = "02:aa:00:00:00:02"
GW = "02:bb:00:00:00:01"
PORTS = {"access": 1, "uplink": 2, "fw-lan": 3, "fw-wan": 4, "ins-lan": 5, "ins-wan": 6,
         "l": 7, "w": 8, "a": 9, "b": 10, "x": 11, "y": 12, "ins-l": 13, "fw-l": 14,
         "fw-w": 15, "svc": 16}
NFS = {"fw-lan": "fw-wan", "fw-wan": "fw-lan", "ins-lan": "ins-wan", "ins-wan": "ins-lan",
       "l": "w", "w": "l"}
BASE = TSRule(rule_id="base:l2", priority=1, output=("normal",))  # the service-less testbed's


def lsi(*rules: TSRule, **kw: Any) -> SwitchState:
    return SwitchState(node="lsi", role="cpe", ts_rules=rules, **kw)


def switch(state: SwitchState) -> FakeSwitch:
    sw = FakeSwitch(PORTS)
    flows = build(state, PORTS)
    assert not flows.skipped
    sw.apply(flows.flows)
    return sw


def pkt(in_port: str, src: str, dst: str, **kw: Any) -> dict[str, Any]:
    return ip_packet(in_port, src, dst, "10.0.0.2", "10.0.0.1", **kw)


def exits(sw: FakeSwitch, p: dict[str, Any]) -> list[str]:
    return [port for port, _ in sw.process(p)]


def test_chain_of_two_nfs_is_crossed_in_order_both_ways() -> None:
    hops = [("fw-lan", "fw-wan"), ("ins-lan", "ins-wan")]
    sw = switch(lsi(BASE, *chain_rules("u1", MAC, "access", "uplink", hops)))
    up = sw.trace(pkt("access", MAC, GW), NFS)
    assert up.path == ["fw-lan", "ins-lan", "uplink"] and up.exits == ["uplink"]
    down = sw.trace(pkt("uplink", GW, MAC), NFS)
    assert down.path == ["ins-wan", "fw-wan", "access"] and down.exits == ["access"]


def test_other_users_traffic_is_not_steered() -> None:
    sw = switch(lsi(BASE, *chain_rules("u1", MAC, "access", "uplink", [("l", "w")])))
    assert exits(sw, pkt("access", OTHER, GW)) == ["normal"]
    assert exits(sw, pkt("uplink", GW, OTHER)) == ["normal"]


def test_higher_priority_classifier_wins_for_http_only() -> None:
    http_rule = TSRule(rule_id="http", priority=200,
                       match=Match(in_port="access", eth_src=MAC, ip_proto=6, tp_dst=80),
                       output=("ins-l",))
    sw = switch(lsi(BASE, *chain_rules("u1", MAC, "access", "uplink", [("fw-l", "fw-w")]),
                    http_rule))
    assert exits(sw, pkt("access", MAC, GW, dport=80)) == ["ins-l"]
    assert exits(sw, pkt("access", MAC, GW, dport=22)) == ["fw-l"]


def test_no_rule_means_drop_and_removal_restores() -> None:
    sw = switch(lsi())
    assert exits(sw, pkt("x", MAC, GW)) == []
    rule = TSRule(rule_id="r", match=Match(in_port="x"), output=("y",))
    plan = diff(build(lsi(rule), PORTS).flows, [from_stats(s) for s in sw.flow_stats()])
    assert [f.cookie for f in plan.add] == [rule_cookie("r")] and not plan.delete
    sw.apply(plan.add)
    assert exits(sw, pkt("x", MAC, GW)) == ["y"]
    plan = diff(build(lsi(), PORTS).flows, [from_stats(s) for s in sw.flow_stats()])
    assert [f.cookie for f in plan.delete] == [rule_cookie("r")] and not plan.add
    sw.delete(plan.delete)
    assert exits(sw, pkt("x", MAC, GW)) == []


def test_nf_ports_are_guarded_from_l2_switching() -> None:
    """Node.attach_ports' guard: what an NF port sends goes only where a TS rule says."""
    guard = [TSRule(rule_id=f"nfport:{p}", priority=2, match=Match(in_port=p))
             for p in ("l", "w")]
    sw = switch(lsi(BASE, *guard))
    assert exits(sw, pkt("w", OTHER, GW)) == [] and exits(sw, pkt("l", GW, OTHER)) == []
    assert exits(sw, pkt("access", OTHER, GW)) == ["normal"]
    sw = switch(lsi(BASE, *guard, *chain_rules("u1", MAC, "access", "uplink", [("l", "w")])))
    assert sw.trace(pkt("access", MAC, GW), NFS).exits == ["uplink"]


def test_flowmod_adds_openflow_prerequisites() -> None:
    r = TSRule(rule_id="r", priority=50,
               match=Match(in_port="a", ipv4_dst="10.1.0.0/16", ip_proto=17, tp_dst=53),
               output=("b",))
    f = rule_flow(r, PORTS.__getitem__)
    assert f.match == {"in_port": 9, "eth_type": 0x0800,
                       "ipv4_dst": ("10.1.0.0", "255.255.0.0"), "ip_proto": 17, "udp_dst": 53}
    assert f.outputs == (10,) and f.priority == pl.P_TS_RULE_BASE + 50
    assert f.cookie == rule_cookie("r") and f.table_id == pl.INGRESS
    tcp = rule_flow(TSRule(rule_id="t", match=Match(ip_proto=6, tp_dst=80,
                                                    ipv4_src="10.0.0.1")), PORTS.__getitem__)
    assert tcp.match["tcp_dst"] == 80 and tcp.match["ipv4_src"] == "10.0.0.1"


def test_flowmod_reserved_outputs_and_drop() -> None:
    port = PORTS.__getitem__
    assert rule_flow(TSRule(rule_id="n", output=("normal",)), port).outputs == ("normal",)
    assert rule_flow(TSRule(rule_id="d", match=Match(in_port="a")), port).outputs == ()
    hairpin = TSRule(rule_id="h", match=Match(in_port="a"), output=("a",))
    assert rule_flow(hairpin, port).outputs == ("in_port",)


def test_flowmod_unknown_port_and_port_without_proto() -> None:
    flows = build(lsi(TSRule(rule_id="r", match=Match(in_port="zz"), output=("a",))), PORTS)
    assert flows.skipped == ["TS rule r: port zz is not on the switch"]
    assert not [f for f in flows.flows if f.cookie == rule_cookie("r")]  # fails closed
    with pytest.raises(ValueError, match="ip_proto"):
        Match(tp_dst=80)


@pytest.mark.parametrize("bad", [
    {"eth_src": "not-a-mac"}, {"ipv4_dst": "10.0.0.300"}, {"tp_dst": 70000}, {"bogus": 1},
])
def test_bad_matches_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Match(**bad)  # type: ignore[arg-type]


def test_cookies_are_stable_and_distinct() -> None:
    a = rule_cookie("user1:up:0")
    assert a == rule_cookie("user1:up:0") and a != rule_cookie("user1:up:1")
    assert 0 < a < 2**63 and pl.kind_of(a) == pl.Kind.TS_RULE


def test_nf_own_address_is_reached_from_the_uplink() -> None:
    nf_mac = "02:cc:00:00:00:09"
    sw = switch(lsi(BASE, *chain_rules("u1", MAC, "access", "uplink", [("l", "w")],
                                       own=[(nf_mac, "w")])))
    assert exits(sw, pkt("uplink", GW, nf_mac)) == ["w"]


def test_rule_ids_are_unique_in_a_state() -> None:
    with pytest.raises(ValidationError, match="TS rule id"):
        lsi(BASE, BASE)


def test_ts_rules_win_over_what_the_controller_derives() -> None:
    """A TS rule is an explicit order: it sits above port security and the captive portal
    (an unauthenticated client's IPv4 would otherwise go to the portal's table)."""
    svc = ServicesAttachment(port="svc", mac="02:5e:00:00:00:01", ip="10.0.0.254")
    client = Client(name="~c", mac=MAC, ip="10.0.0.2", port="access")
    ctl = dict(uplink="uplink", access_ports=("access",), services=svc, users=(client,))
    sw = switch(lsi(**ctl))
    assert exits(sw, pkt("access", MAC, GW, proto=17, dport=9999)) == []  # captive: dropped
    sw = switch(lsi(*chain_rules("bench", MAC, "access", "uplink", [("fw-lan", "fw-wan")]),
                    **ctl))
    assert sw.trace(pkt("access", MAC, GW, proto=17, dport=9999), NFS).path == [
        "fw-lan", "uplink"]
    assert sw.trace(pkt("uplink", GW, MAC, proto=17), NFS).path == ["fw-wan", "access"]


def test_a_restart_changes_no_ts_rule_flow() -> None:
    state = lsi(BASE, *chain_rules("u1", MAC, "access", "uplink", [("l", "w")]))
    sw = switch(state)
    plan = diff(build(state, PORTS).flows, [from_stats(s) for s in sw.flow_stats()])
    assert plan.empty and plan.unchanged == len(sw.flows)


def test_an_open_path_below_a_chain_on_a_controlled_switch() -> None:
    """The benchmarks on a controlled testbed: an empty chain (priority 50) lets an unknown
    client straight out and back; a chain (100) takes over its traffic while it is there."""
    svc = ServicesAttachment(port="svc", mac="02:5e:00:00:00:01", ip="10.0.0.254")
    client = Client(name="~c", mac=MAC, port="access")  # no address: DHCP only
    ctl = dict(uplink="uplink", access_ports=("access",), services=svc, users=(client,))
    direct = chain_rules("bench:direct", MAC, "access", "uplink", [], priority=50)
    sw = switch(lsi(*direct, **ctl))
    assert exits(sw, pkt("access", MAC, GW)) == ["uplink"]
    assert exits(sw, pkt("uplink", GW, MAC)) == ["access"]
    sw = switch(lsi(*direct, *chain_rules("b1", MAC, "access", "uplink", [("l", "w")]), **ctl))
    assert sw.trace(pkt("access", MAC, GW), NFS).path == ["l", "uplink"]
    assert sw.trace(pkt("uplink", GW, MAC), NFS).path == ["w", "access"]
