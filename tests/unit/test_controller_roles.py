"""Several controllers sharing the switches with OpenFlow roles (issue #15): rendezvous
sharding, membership from heartbeats, generation ids, and a slave taking over a dead master's
switch without touching its flows (the app fed fake datapaths, as in test_controller_app)."""

from __future__ import annotations

import time

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from netfate.bus.messages import ControllerAlive, SwitchSynced
from netfate.controller.app import ControllerApp, datapath_id
from netfate.controller.app_roles import EventRoles
from netfate.controller.roles import Generations, Membership, check_id, master_for
from tests.unit.test_controller_app import (
    PORTS,
    U1,
    Bus,
    FakeDatapath,
    answer_barriers,
    answer_stats,
    connect,
    state,
)


def test_rendezvous_spreads_switches_and_moves_only_the_dead_ones() -> None:
    dpids = [datapath_id(f"cpe{i}") for i in range(200)]
    three = {d: master_for(d, ["c1", "c2", "c3"]) for d in dpids}
    counts = {c: list(three.values()).count(c) for c in ("c1", "c2", "c3")}
    assert all(40 <= n <= 100 for n in counts.values()), counts
    two = {d: master_for(d, ["c1", "c3"]) for d in dpids}
    assert all(two[d] == three[d] for d in dpids if three[d] != "c2")
    assert master_for(1, []) is None


def test_membership_and_generations() -> None:
    m = Membership("c1", dead_after=3.0)
    m.beat("c2", now=100.0)
    assert m.members(now=101.0) == ["c1", "c2"]
    assert m.members(now=104.0) == ["c1"]
    g = Generations()
    ids = [g.next() for _ in range(1000)]
    assert ids == sorted(set(ids)) and ids[0] > 1_600_000_000 * 10**6


@pytest.mark.parametrize("bad", ["", "C1", "c1\n", "c_1", "-c", "c" * 32, "c\u0661"])
def test_bad_controller_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="controller id"):
        check_id(bad)


def _controller(cid: str) -> ControllerApp:
    a = ControllerApp()
    a.bus = Bus()
    a.controller_id = cid
    a._roles_init()
    a.roles_since -= 60  # past its first seconds, when it claims nothing
    return a


def _roles(dp: FakeDatapath) -> list[int]:
    return [m.role for m in dp.take(parser.OFPRoleRequest)]


def test_one_master_per_switch_and_a_slave_takes_over_without_touching_flows() -> None:
    node = next(f"cpe{i}" for i in range(50)
                if master_for(datapath_id(f"cpe{i}"), ["c1", "c2"]) == "c1")
    c1, c2 = _controller("c1"), _controller("c2")
    c1.on_alive(ControllerAlive(controller="c2", ts=time.time()))
    c2.on_alive(ControllerAlive(controller="c1", ts=time.time()))
    for c in (c1, c2):
        c.apply_desired(state(U1).model_copy(update={"node": node}))
    dp1, dp2 = FakeDatapath(node, PORTS), FakeDatapath(node, PORTS)
    dp2.switch = dp1.switch  # one switch, a connection to each controller
    connect(c1, dp1)
    connect(c2, dp2)
    assert _roles(dp1) == [ofp.OFPCR_ROLE_MASTER] and _roles(dp2) == [ofp.OFPCR_ROLE_SLAVE]
    assert dp2.sent == []  # the slave neither reads nor writes the switch
    answer_stats(c1, dp1)
    answer_barriers(c1, dp1)
    flows = dict(dp1.switch.flows)
    assert flows and c1.bus.of(SwitchSynced)

    # c1 dies: c2 stops hearing it, asks to be master with a newer generation, and syncs
    # by diff: nothing sent, since the flows are already right.
    c2.membership._seen["c1"] = time.monotonic() - 60
    gen_before = c1.generations.next()
    c2._handle_roles(EventRoles())
    (req,) = dp2.take(parser.OFPRoleRequest)
    assert req.role == ofp.OFPCR_ROLE_MASTER and req.generation_id > gen_before
    answer_stats(c2, dp2)
    assert dp2.take(parser.OFPFlowMod) == []
    assert dp1.switch.flows == flows
    (rep,) = c2.bus.of(SwitchSynced)
    assert rep.added == rep.deleted == 0


def test_a_controller_claims_nothing_before_it_has_heard_its_peers() -> None:
    c = _controller("c1")
    c.roles_since = time.monotonic()
    c.apply_desired(state(U1))
    dp = FakeDatapath("cpe1", PORTS)
    connect(c, dp)
    assert _roles(dp) == [ofp.OFPCR_ROLE_SLAVE]
    assert not dp.take(parser.OFPFlowStatsRequest)
    c.roles_since -= 60  # alone, it masters everything once its first seconds are over
    c._handle_roles(EventRoles())
    assert _roles(dp) == [ofp.OFPCR_ROLE_MASTER] and dp.take(parser.OFPFlowStatsRequest)


def test_a_master_claims_its_switches_again_now_and_then() -> None:
    c = _controller("c1")
    c.apply_desired(state(U1))
    dp = FakeDatapath("cpe1", PORTS)
    connect(c, dp)
    (first,) = dp.take(parser.OFPRoleRequest)
    c._handle_roles(EventRoles())
    assert _roles(dp) == []  # nothing to say yet
    c.reasserted_at -= 60
    c._handle_roles(EventRoles())
    (again,) = dp.take(parser.OFPRoleRequest)
    assert again.role == ofp.OFPCR_ROLE_MASTER and again.generation_id > first.generation_id
    assert not dp.take(parser.OFPFlowMod)


def test_a_refused_role_request_is_asked_again() -> None:
    c = _controller("c1")
    c.apply_desired(state(U1))
    dp = FakeDatapath("cpe1", PORTS)
    connect(c, dp)
    assert len(_roles(dp)) == 1
    c.role_refused(dp.id, ofp.OFPRRFC_STALE)
    c._handle_roles(EventRoles())
    assert len(_roles(dp)) == 1


def test_one_controller_sends_no_role_request() -> None:
    c = ControllerApp()
    c.bus = Bus()
    c.apply_desired(state(U1))
    dp = FakeDatapath("cpe1", PORTS)
    connect(c, dp)
    assert _roles(dp) == [] and c.is_master(dp.id)


def test_heartbeats_from_many_ids_keep_membership_bounded() -> None:
    # Every ControllerAlive on the bus with a new id added an entry that was never dropped,
    # dead or not: a stream of made-up ids grew the controller's memory without bound.
    m = Membership("c-self")
    for i in range(5000):
        m.beat(f"x{i}", now=float(i))
    assert len(m._seen) <= 64
    assert m.members(now=4999.0)[-1] == "x4999" or "x4999" in m.members(now=4999.0)
    # the dead are forgotten, the live kept
    m2 = Membership("c-self", dead_after=3.5)
    m2.beat("a", now=0.0)
    m2.beat("b", now=10.0)
    assert "a" not in m2._seen and m2.members(now=10.0) == ["b", "c-self"]
    # all live at once: capped, and the ones already known keep beating
    m3 = Membership("c-self")
    for i in range(1000):
        m3.beat(f"y{i}", now=1.0)
    m3.beat("y0", now=2.0)
    assert len(m3._seen) == 64 and m3._seen["y0"] == 2.0


def test_a_switch_mastered_again_is_read_again() -> None:
    """A controller that was slave for a while does not trust the table it made before:
    the other master wrote it meanwhile."""
    node = next(f"cpe{i}" for i in range(50)
                if master_for(datapath_id(f"cpe{i}"), ["c1", "c2"]) == "c2")
    c1 = _controller("c1")
    c1.apply_desired(state(U1).model_copy(update={"node": node}))
    dp = FakeDatapath(node, PORTS)
    connect(c1, dp)
    assert answer_stats(c1, dp)
    answer_barriers(c1, dp)
    c1.on_alive(ControllerAlive(controller="c2", ts=time.time()))
    c1._handle_roles(EventRoles())
    assert _roles(dp)[-1] == ofp.OFPCR_ROLE_SLAVE
    lost = next(iter(dp.switch.flows.values()))
    dp.switch.delete([lost])  # what c2, master meanwhile, did
    c1.membership._seen["c2"] = time.monotonic() - 60  # c2 dies
    c1._handle_roles(EventRoles())
    assert _roles(dp)[-1] == ofp.OFPCR_ROLE_MASTER
    assert answer_stats(c1, dp)  # read again, and the lost flow put back
    assert any(m.command == ofp.OFPFC_ADD for m in dp.take(parser.OFPFlowMod))
