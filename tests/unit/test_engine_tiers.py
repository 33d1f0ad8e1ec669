"""Placement across three tiers (issue 11): the access CPE, then the PE above it, then the DC;
only nodes the access node has a tunnel to; back toward the edge when room appears."""

from __future__ import annotations

from netfate.engine import Migrate, NodeTelemetry, NodeView, Place, Steer, UserAssociated, plan

from .test_engine_support import FW_CAPS, MAC, dc, node, run, user, world

LOGIN = UserAssociated(user="alice", node="cpe1", mac=MAC, ip="10.0.0.2")
ALL = frozenset({"pe1", "dc1", "cpe1"})


def cpe(**kw: object) -> NodeView:
    n = node("cpe1", **kw)  # type: ignore[arg-type]
    return n.model_copy(update={"parent": "pe1", "tunnels": ALL - {"cpe1"}})


def pe(**kw: object) -> NodeView:
    return node("pe1", "pe", **kw).model_copy(update={"tunnels": ALL - {"pe1"}})  # type: ignore[arg-type]


def test_a_full_cpe_puts_the_nf_on_the_pe_above_it() -> None:
    p = plan(world([cpe(cpu=0.9), pe(), dc()], [user()]), LOGIN)
    (place,) = p.of(Place)
    assert place.node == "pe1" and "on PE pe1" in place.reason and "cpu 0.90" in place.reason
    assert p.of(Steer)[0].chain == ("pe1-alice-firewall",)


def test_a_full_pe_puts_it_in_the_dc() -> None:
    p = plan(world([cpe(cpu=0.9), pe(cpu=0.95), dc()], [user()]), LOGIN)
    (place,) = p.of(Place)
    assert place.node == "dc1" and "access node cpe1: cpu 0.90" in place.reason


def test_no_tunnel_to_a_node_is_no_route_and_a_reason() -> None:
    lonely = cpe(cpu=0.9).model_copy(update={"tunnels": frozenset()})
    p = plan(world([lonely, pe(), dc()], [user()]), LOGIN)
    assert p.of(Place) == ()
    (miss,) = p.unplaced
    assert "PE pe1: no route from cpe1 (no tunnel)" in miss.reason
    assert "DC dc1: no route from cpe1 (no tunnel)" in miss.reason


def test_a_chain_may_be_split_cpe_and_dc() -> None:
    # the CPE has the firewall's capabilities but not the shaper's, nor has the PE: the
    # chain is split between the CPE and the DC (GNF Fig. 4)
    c = cpe(caps=FW_CAPS)
    p = plan(world([c, pe(caps=frozenset()), dc()], [user(nfs=("firewall", "shaper"))]),
             LOGIN)
    assert [(i.nf, i.node) for i in p.of(Place)] == [("firewall", "cpe1"), ("shaper", "dc1")]
    assert p.of(Steer)[0].chain == ("cpe1-alice-firewall", "dc1-alice-shaper")


def test_room_on_the_cpe_brings_the_nf_back_from_the_pe() -> None:
    snap, _ = run(world([cpe(cpu=0.9), pe(), dc()], [user()]), LOGIN)
    p = plan(snap, NodeTelemetry(node="cpe1", cpu_util=0.2, mem_free_mb=800, nf_count=0))
    assert [(m.src, m.dst) for m in p.of(Migrate)] == [("pe1", "cpe1")]


def test_roaming_keeps_a_dc_nf_where_it_is_and_only_steers_anew() -> None:
    cpe2 = node("cpe2").model_copy(update={"parent": "pe1", "tunnels": ALL | {"cpe1"}})
    snap, _ = run(world([cpe(cpu=0.9), cpe2, pe(cpu=0.95), dc()], [user()]), LOGIN)
    p = plan(snap, UserAssociated(user="alice", node="cpe2"))
    assert p.of(Migrate) == () and p.of(Place) == ()
    assert p.of(Steer)[0].node == "cpe2" and p.of(Steer)[0].chain == ("dc1-alice-firewall",)
