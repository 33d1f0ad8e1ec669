"""Desired flows vs reported flows: a restart re-installs nothing; changes touch only changes."""

from __future__ import annotations

from netfate.controller import pipeline as pl
from netfate.controller.fake import FakeSwitch, as_reported, key
from netfate.controller.flowmod import FlowMod
from netfate.controller.flows import build
from netfate.controller.model import Client, Hop, ServicesAttachment, SwitchState
from netfate.controller.ofmsg import from_stats
from netfate.controller.sync import diff, flow_content, flow_key

PORTS = {"a1": 1, "a2": 2, "up": 10, "svc": 20, "fw1-l": 31, "fw1-w": 32, "ins1-l": 33,
         "ins1-w": 34, "fw2-l": 41, "fw2-w": 42}
FW1, INS1, FW2 = Hop(lan="fw1-l", wan="fw1-w"), Hop(lan="ins1-l", wan="ins1-w"), \
    Hop(lan="fw2-l", wan="fw2-w")
U1 = Client(name="user1", mac="02:aa:00:00:00:01", ip="10.90.1.1", port="a1",
          authenticated=True, chain=(FW1,), idle_timeout=60)
U2 = Client(name="user2", mac="02:aa:00:00:00:02", ip="10.90.1.2", port="a2",
          authenticated=True, chain=(FW2,), idle_timeout=60)


def state(*users: Client) -> SwitchState:
    return SwitchState(
        node="cpe1", role="cpe", uplink="up", access_ports=("a1", "a2"), users=users,
        services=ServicesAttachment(port="svc", mac="02:5e:00:00:00:01", ip="10.90.0.2"),
    )


def reported(flows: list[FlowMod]) -> list[FlowMod]:
    """The flows as the controller reads them back from a switch (through the wire format)."""
    return [from_stats(as_reported(f)) for f in flows]


def test_reported_flows_compare_equal_to_what_was_installed() -> None:
    for f in build(state(U1, U2), PORTS).flows:
        back = from_stats(as_reported(f))
        assert flow_key(back) == flow_key(f)
        assert flow_content(back) == flow_content(f)


def test_a_restart_reinstalls_and_deletes_nothing() -> None:
    desired = build(state(U1, U2), PORTS).flows
    plan = diff(desired, reported(desired))
    assert plan.empty and plan.unchanged == len(desired)


def test_a_fresh_switch_gets_everything_later_tables_first() -> None:
    desired = build(state(U1), PORTS).flows
    plan = diff(desired, [])
    assert len(plan.add) == len(desired) and not plan.delete
    tables = [f.table_id for f in plan.add]
    assert tables == sorted(tables, reverse=True)


def test_a_chain_change_touches_only_that_users_flows() -> None:
    before = build(state(U1, U2), PORTS).flows
    after = build(state(U1.model_copy(update={"chain": (FW1, INS1)}), U2), PORTS).flows
    plan = diff(after, reported(before))
    u2 = {pl.cookie(k, "user2") for k in pl.Kind}
    assert plan.add and all(f.cookie not in u2 for f in plan.add + plan.delete)
    # the idle flow did not change, so its timer is not reset
    idle = pl.cookie(pl.Kind.IDLE, "user1")
    assert all(f.cookie != idle for f in plan.add + plan.delete)
    sw = FakeSwitch(PORTS)
    sw.apply(before)
    sw.apply(plan.add)
    sw.delete(plan.delete)
    assert {key(f) for f in sw.flows.values()} == {key(f) for f in after}
    assert all(flow_content(sw.flows[key(f)]) == flow_content(f) for f in after)


def test_same_match_with_other_actions_is_replaced_not_deleted() -> None:
    f = FlowMod(cookie=pl.cookie(pl.Kind.STEER, "u"), priority=100, match={"in_port": 1},
                outputs=(2,), table_id=2)
    g = FlowMod(cookie=f.cookie, priority=100, match={"in_port": 1}, outputs=(3,), table_id=2)
    plan = diff([g], reported([f]))
    assert plan.add == [g] and plan.delete == []


def test_a_removed_user_loses_all_its_flows_and_nothing_else() -> None:
    before = build(state(U1, U2), PORTS).flows
    after = build(state(U2), PORTS).flows
    plan = diff(after, reported(before))
    assert not plan.add
    u1 = {pl.cookie(k, "user1") for k in pl.Kind}
    assert plan.delete and all(f.cookie in u1 for f in plan.delete)
    assert {f.cookie for f in before if f.cookie in u1} == {f.cookie for f in plan.delete}
    tables = [f.table_id for f in plan.delete]
    assert tables == sorted(tables)  # ingress first: nothing new enters what is going


def test_foreign_flows_are_left_alone_unless_purged() -> None:
    desired = build(state(U1), PORTS).flows
    normal = FlowMod(cookie=0x5EED, priority=1, match={}, outputs=("normal",))
    plan = diff(desired, [*reported(desired), normal])
    assert plan.empty and plan.foreign == [normal]
    purge = diff(desired, [*reported(desired), normal], purge_foreign=True)
    assert purge.delete == [normal] and not purge.add


def test_a_foreign_flow_with_our_match_is_taken_over() -> None:
    miss = FlowMod(cookie=123, priority=0, match={}, outputs=(), table_id=0)
    desired = build(state(), PORTS).flows
    plan = diff(desired, [miss])
    ours = [f for f in plan.add if f.table_id == 0 and f.priority == 0]
    assert len(ours) == 1 and pl.is_ours(ours[0].cookie) and not plan.foreign


def test_masks_and_spellings_are_normalized() -> None:
    a = FlowMod(cookie=1, priority=5, table_id=1, outputs=(),
                match={"metadata": (0x14, pl.ALL_ONES), "ipv4_dst": ("10.0.0.1", "255.255.255.255"),
                       "eth_src": "02:AA:00:00:00:01"})
    b = FlowMod(cookie=1, priority=5, table_id=1, outputs=(),
                match={"metadata": 0x14, "ipv4_dst": "10.0.0.1", "eth_src": "02:aa:00:00:00:01"})
    assert flow_key(a) == flow_key(b)
    c = FlowMod(cookie=1, priority=5, table_id=1, outputs=(),
                match={"ipv4_dst": ("10.0.0.7", "255.255.255.0")})
    d = FlowMod(cookie=1, priority=5, table_id=1, outputs=(),
                match={"ipv4_dst": ("10.0.0.0", "255.255.255.0")})
    assert flow_key(c) == flow_key(d)
