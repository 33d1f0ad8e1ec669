"""The "netfate" policy: edge placement, following users, DC fallback, re-evaluation. No root."""

from __future__ import annotations

from typing import Any

import pytest

from netfate.engine import (
    CatalogueEntry,
    Migrate,
    NetfatePolicy,
    NodeDown,
    NodeTelemetry,
    NodeUp,
    NodeView,
    Place,
    Reconcile,
    Release,
    Snapshot,
    Steer,
    Unsteer,
    UserAssociated,
    UserDisassociated,
    UserIdle,
    plan,
)
from netfate.engine.events import Event

from .test_engine_support import (
    FW_CAPS,
    IP,
    MAC,
    dc,
    inst,
    kinds,
    node,
    run,
    user,
    world,
)

LOGIN = UserAssociated(user="alice", node="cpe1", mac=MAC, ip=IP)
FIREWALL_BIG = CatalogueEntry(name="firewall", capabilities=FW_CAPS, memory_mb=500)


# -- NetFATE: at the access node, follow the user, release on idle -------------------------------


def test_login_places_chain_on_access_node_and_steers_it() -> None:
    snap = world([node("cpe1"), dc()], [user(nfs=("firewall", "shaper"))])
    p = plan(snap, LOGIN)
    assert p.intents == (
        Place(user="alice", nf="firewall", node="cpe1", instance_id="cpe1-alice-firewall",
              reason="firewall for alice on access node cpe1"),
        Place(user="alice", nf="shaper", node="cpe1", instance_id="cpe1-alice-shaper",
              reason="shaper for alice on access node cpe1"),
        Steer(user="alice", node="cpe1", chain=("cpe1-alice-firewall", "cpe1-alice-shaper"),
              mac=MAC, ip=IP),
    )
    assert p.unplaced == ()


def test_nf_follows_user_to_new_access_node() -> None:
    snap, _ = run(world([node("cpe1"), node("cpe2"), dc()], [user()]), LOGIN)
    p = plan(snap, UserAssociated(user="alice", node="cpe2"))
    # make before break: migrate, steer at the new node, then unsteer the old one
    assert kinds(p) == ["migrate", "steer", "unsteer"]
    m, s, u = p.intents
    assert m == Migrate(user="alice", nf="firewall", instance_id="cpe1-alice-firewall",
                        src="cpe1", dst="cpe2", new_instance_id="cpe2-alice-firewall",
                        reason="firewall for alice on access node cpe2")
    assert s == Steer(user="alice", node="cpe2", chain=("cpe2-alice-firewall",), mac=MAC, ip=IP)
    assert u == Unsteer(user="alice", node="cpe1")


def test_idle_unsteers_then_releases_every_instance() -> None:
    snap, _ = run(world([node("cpe1"), dc()], [user(nfs=("firewall", "shaper"))]), LOGIN)
    p = plan(snap, UserIdle(user="alice"))
    assert p.intents == (
        Unsteer(user="alice", node="cpe1"),
        Release(user="alice", nf="firewall", instance_id="cpe1-alice-firewall", node="cpe1",
                reason="alice idle"),
        Release(user="alice", nf="shaper", instance_id="cpe1-alice-shaper", node="cpe1",
                reason="alice idle"),
    )


def test_a_session_ended_otherwise_says_so_in_the_release() -> None:
    """(new-user probe, 2026-12-05) a logout, or another user's login on the device, was
    recorded as "alice idle"."""
    snap, _ = run(world([node("cpe1"), dc()], [user()]), LOGIN)
    for why in ("logged out", "replaced on their device by another user's login"):
        p = plan(snap, UserIdle(user="alice", why=why))
        assert [r.reason for r in p.of(Release)] == [f"alice {why}"]


def test_idle_also_releases_failed_and_dc_instances() -> None:
    snap = world([node("cpe1"), dc()], [user(at="cpe1")],
                 [inst("dc1", "alice", "firewall"), inst("cpe1", "alice", "shaper", "failed"),
                  inst("cpe1", "alice", "old", "releasing")])
    p = plan(snap, UserIdle(user="alice"))
    assert kinds(p) == ["unsteer", "release", "release"]
    assert {r.instance_id for r in p.of(Release)} == {"dc1-alice-firewall", "cpe1-alice-shaper"}


def test_disassociation_keeps_nfs_until_idle_or_reassociation() -> None:
    snap, _ = run(world([node("cpe1"), node("cpe2"), dc()], [user()]), LOGIN)
    p = plan(snap, UserDisassociated(user="alice", node="cpe1"))
    assert p.is_empty
    assert "kept until idle or re-association" in p.reasons[0]
    stale = plan(snap, UserDisassociated(user="alice", node="cpe2"))
    assert stale.is_empty and "stale" in stale.reasons[0]


def test_relogin_at_same_node_with_nfs_in_place_only_restores_steering() -> None:
    # Session ended without the release going through: the NFs are still there.
    snap = world([node("cpe1"), dc()], [user(at="cpe1", active=False)],
                 [inst("cpe1", "alice", "firewall")])
    p = plan(snap, LOGIN)
    assert kinds(p) == ["steer"]


def test_steering_left_at_another_node_goes_once_steered_where_the_user_is() -> None:
    """Chaos finding (docs/chaos.md): a roam while the old CPE's agent was down left the user
    steered at both CPEs; re-associating at the same node must unsteer the old one, after
    the Steer."""
    stale = user(at="cpe2").model_copy(update={"steered_at": ("cpe1", "cpe2")})
    snap = world([node("cpe1"), node("cpe2"), dc()], [stale],
                 [inst("cpe2", "alice", "firewall")])
    p = plan(snap, UserAssociated(user="alice", node="cpe2", mac=MAC, ip=IP))
    assert kinds(p) == ["steer", "unsteer"]
    assert [(i.kind, i.node) for i in p.intents] == [("steer", "cpe2"), ("unsteer", "cpe1")]


def test_stale_steering_is_kept_while_the_user_cannot_be_steered_where_they_are() -> None:
    # Nothing replaces it (the access node is offline): the old steering stays.
    stale = user(at="cpe2").model_copy(update={"steered_at": ("cpe1",)})
    snap = world([node("cpe1"), node("cpe2", online=False), dc()], [stale],
                 [inst("cpe1", "alice", "firewall")])
    p = plan(snap, UserAssociated(user="alice", node="cpe2", mac=MAC, ip=IP))
    assert "unsteer" not in kinds(p)


def test_new_ip_at_same_node_resteers_without_moving() -> None:
    snap, _ = run(world([node("cpe1"), dc()], [user()]), LOGIN)
    p = plan(snap, UserAssociated(user="alice", node="cpe1", ip="10.0.0.9"))
    assert p.intents == (
        Steer(user="alice", node="cpe1", chain=("cpe1-alice-firewall",), mac=MAC, ip="10.0.0.9"),
    )


# -- GNF fallback to the DC ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpe", "why"),
    [
        (node("cpe1", caps=frozenset({"nftables"})), "lacks capabilities conntrack"),
        (node("cpe1", free=10), "10 MB free < 16 MB"),
        (node("cpe1", cpu=0.85), "cpu 0.85 >= 0.80"),
        (node("cpe1", cpu=0.80), "cpu 0.80 >= 0.80"),
        (node("cpe1", total=1000, free=160), "memory would reach 0.86 >= 0.85"),
        (node("cpe1", nfs=3, max_nfs=3), "3 NFs, max 3"),
    ],
    ids=["capability", "memory", "cpu", "cpu-at-threshold", "mem-util", "max-nfs"],
)
def test_falls_back_to_dc_when_access_node_cannot_host(cpe: NodeView, why: str) -> None:
    snap = world([cpe, dc()], [user()])
    p = plan(snap, LOGIN)
    (place,) = p.of(Place)
    assert place.node == "dc1" and place.instance_id == "dc1-alice-firewall"
    assert why in place.reason and "access node cpe1" in place.reason
    # steering still enters at the access node; the chain reaches into the DC
    assert p.of(Steer) == (
        Steer(user="alice", node="cpe1", chain=("dc1-alice-firewall",), mac=MAC, ip=IP),
    )


def test_offline_access_node_places_in_dc_but_defers_steering() -> None:
    snap = world([node("cpe1", online=False), dc()], [user()])
    p = plan(snap, LOGIN)
    assert [i.node for i in p.of(Place)] == ["dc1"]
    assert p.of(Steer) == ()
    assert any("access node cpe1 is offline" in r for r in p.reasons)


def test_thresholds_are_configurable() -> None:
    snap = world([node("cpe1", cpu=0.6), dc()], [user()])
    assert plan(snap, LOGIN).of(Place)[0].node == "cpe1"
    strict = NetfatePolicy(name="strict", cpu_threshold=0.5)
    assert plan(snap, LOGIN, strict).of(Place)[0].node == "dc1"


def test_no_node_fits_gives_no_place_and_a_reason() -> None:
    snap = world([node("cpe1", caps=frozenset()), dc(free=5)], [user()])
    p = plan(snap, LOGIN)
    assert p.intents == ()
    (miss,) = p.unplaced
    assert (miss.user, miss.nf) == ("alice", "firewall")
    assert "no node fits" in miss.reason
    assert "access node cpe1: lacks capabilities conntrack,nftables" in miss.reason
    assert "DC dc1: 5 MB free < 16 MB" in miss.reason
    assert any("firewall for alice not placed" in r for r in p.reasons)


def test_no_dc_at_all_is_explained() -> None:
    p = plan(world([node("cpe1", cpu=0.99)], [user()]), LOGIN)
    assert p.intents == ()
    assert "no other DC node" in p.unplaced[0].reason


def test_incomplete_chain_places_what_fits_but_is_not_steered() -> None:
    # A firewall that can't be placed must not be steered around.
    snap = world([node("cpe1", caps=frozenset({"tc"})), dc(caps=frozenset({"tc"}))],
                 [user(nfs=("firewall", "shaper"))])
    p = plan(snap, LOGIN)
    assert kinds(p) == ["place"]
    assert p.of(Place)[0].nf == "shaper"
    assert [u.nf for u in p.unplaced] == ["firewall"]
    assert any("chain incomplete" in r for r in p.reasons)


def test_unknown_nf_in_chain_is_reported() -> None:
    snap = world([node("cpe1"), dc()], [user(nfs=("firewall", "ids"))])
    p = plan(snap, LOGIN)
    assert [u.reason for u in p.unplaced] == ["ids is not in the catalogue"]
    assert p.of(Steer) == ()


# -- capacity accounting within one plan --------------------------------------------------------


def test_two_nfs_of_a_chain_compete_for_the_last_memory() -> None:
    # 100 MB free: the firewall (16) fits, then the shaper (64) would leave 20 MB -> util 0.98.
    snap = world([node("cpe1", total=1000, free=100), dc()], [user(nfs=("firewall", "shaper"))])
    p = plan(snap, LOGIN)
    assert [(x.nf, x.node) for x in p.of(Place)] == [("firewall", "dc1"), ("shaper", "dc1")]
    snap = world([node("cpe1", total=1000, free=900), dc()],
                 [user(nfs=("firewall", "firewall2"))],
                 catalogue=[FIREWALL_BIG, FIREWALL_BIG.model_copy(update={"name": "firewall2"})])
    p = plan(snap, LOGIN)
    # 900 free; the first takes 500 (util 0.6); the second doesn't fit in the remaining 400.
    assert [(x.nf, x.node) for x in p.of(Place)] == [("firewall", "cpe1"), ("firewall2", "dc1")]


def test_two_nfs_compete_for_the_last_slot() -> None:
    snap = world([node("cpe1", nfs=1, max_nfs=2), dc()], [user(nfs=("firewall", "shaper"))])
    p = plan(snap, LOGIN)
    assert [(x.nf, x.node) for x in p.of(Place)] == [("firewall", "cpe1"), ("shaper", "dc1")]
    assert p.of(Steer)[0].chain == ("cpe1-alice-firewall", "dc1-alice-shaper")


def test_two_users_compete_for_the_last_slot_on_a_shared_node() -> None:
    snap = world([node("cpe1", max_nfs=1), dc()],
                 [user("bob", at="cpe1"), user("alice", at="cpe1")])
    p = plan(snap, Reconcile())
    # deterministic: users in name order, so alice gets the slot
    assert [(x.user, x.node) for x in p.of(Place)] == [("alice", "cpe1"), ("bob", "dc1")]


def test_dcs_fill_up_one_slot_each() -> None:
    snap = world([node("cpe1", caps=frozenset()), dc("dc1", max_nfs=1), dc("dc2", max_nfs=1)],
                 [user(nfs=("firewall",), at="cpe1"), user("bob", nfs=("firewall",), at="cpe1")])
    p = plan(snap, Reconcile())
    assert sorted(x.node for x in p.of(Place)) == ["dc1", "dc2"]


# -- DC choice ----------------------------------------------------------------------------------


def test_least_loaded_dc_wins_ties_broken_by_name() -> None:
    cpe = node("cpe1", caps=frozenset())
    busy = world([cpe, dc("dc1", cpu=0.6), dc("dc2", cpu=0.3)], [user()])
    assert plan(busy, LOGIN).of(Place)[0].node == "dc2"
    tie = world([cpe, dc("dcb"), dc("dca")], [user()])
    assert plan(tie, LOGIN).of(Place)[0].node == "dca"
    fuller = world([cpe, dc("dca", nfs=5), dc("dcb", nfs=1)], [user()])
    assert plan(fuller, LOGIN).of(Place)[0].node == "dcb"


def test_chain_prefers_the_dc_it_already_uses() -> None:
    snap = world([node("cpe1", caps=frozenset()), dc("dc1", cpu=0.5), dc("dc2", cpu=0.2)],
                 [user(nfs=("firewall", "shaper"), at="cpe1")],
                 [inst("dc1", "alice", "firewall")])
    p = plan(snap, Reconcile())
    assert [x.node for x in p.of(Place)] == ["dc1"]  # the shaper joins the firewall


def test_nf_stays_in_its_dc_when_another_gets_lighter() -> None:
    snap = world([node("cpe1", caps=frozenset()), dc("dc1", cpu=0.7), dc("dc2", cpu=0.1)],
                 [user(at="cpe1")], [inst("dc1", "alice", "firewall")])
    p = plan(snap, Reconcile())
    assert kinds(p) == ["steer"]


# -- re-evaluation on telemetry -----------------------------------------------------------------


def _placed_at_cpe1() -> Snapshot:
    snap = world([node("cpe1", cpu=0.5), node("cpe2", cpu=0.9), dc()],
                 [user(nfs=("firewall", "shaper")), user("bob", at="cpe2")],
                 [inst("dc1", "bob", "firewall")])
    snap, _ = run(snap, LOGIN)
    return snap


@pytest.mark.parametrize("cpu", [0.36, 0.5, 0.64])
def test_small_telemetry_change_gives_empty_plan(cpu: float) -> None:
    snap = _placed_at_cpe1()
    p = plan(snap, NodeTelemetry(node="cpe1", cpu_util=cpu, mem_free_mb=720, nf_count=2))
    assert p.is_empty
    assert "change below 0.15" in p.reasons[0]


def test_change_of_exactly_the_delta_reevaluates() -> None:
    snap = _placed_at_cpe1()
    p = plan(snap, NodeTelemetry(node="cpe1", cpu_util=0.65, mem_free_mb=720, nf_count=2))
    assert "re-evaluating" in p.reasons[0]
    assert p.is_empty  # 0.65 is still under the threshold: nothing moves


def test_overload_migrates_the_access_users_nfs_to_the_dc() -> None:
    snap = _placed_at_cpe1()
    ev = NodeTelemetry(node="cpe1", cpu_util=0.9, mem_free_mb=720, nf_count=2)
    p = plan(snap, ev)
    assert kinds(p) == ["migrate", "migrate", "steer"]
    assert [(m.nf, m.src, m.dst) for m in p.of(Migrate)] == [
        ("firewall", "cpe1", "dc1"), ("shaper", "cpe1", "dc1")]
    assert "cpu 0.90 >= 0.80" in p.of(Migrate)[0].reason
    assert not any(m.state_lost for m in p.of(Migrate))
    assert p.of(Steer)[0].chain == ("dc1-alice-firewall", "dc1-alice-shaper")


def test_memory_overload_counts_too() -> None:
    snap = _placed_at_cpe1()
    ev = NodeTelemetry(node="cpe1", cpu_util=0.5, mem_free_mb=100, nf_count=2)
    assert [m.dst for m in plan(snap, ev).of(Migrate)] == ["dc1", "dc1"]


def test_recovery_brings_nfs_back_to_the_access_node() -> None:
    snap = _placed_at_cpe1()
    snap, _ = run(snap, NodeTelemetry(node="cpe1", cpu_util=0.9, mem_free_mb=720, nf_count=2))
    p = plan(snap, NodeTelemetry(node="cpe1", cpu_util=0.3, mem_free_mb=800, nf_count=0))
    assert [(m.src, m.dst) for m in p.of(Migrate)] == [("dc1", "cpe1"), ("dc1", "cpe1")]
    assert p.of(Steer)[0].chain == ("cpe1-alice-firewall", "cpe1-alice-shaper")


def test_telemetry_from_the_dc_only_touches_users_with_nfs_there() -> None:
    snap = _placed_at_cpe1()
    # bob's firewall is in dc1 (cpe2 is busy); an overloaded dc1 with nowhere else: keep it.
    p = plan(snap, NodeTelemetry(node="dc1", cpu_util=0.95, mem_free_mb=90_000, nf_count=1))
    assert p.intents == ()
    assert any("keeping it on dc1" in r for r in p.reasons)
    # with a second DC, it moves there
    snap2 = snap.with_node(dc("dc2"))
    p = plan(snap2, NodeTelemetry(node="dc1", cpu_util=0.95, mem_free_mb=90_000, nf_count=1))
    assert [(m.user, m.src, m.dst) for m in p.of(Migrate)] == [("bob", "dc1", "dc2")]
    assert p.of(Steer)[0].node == "cpe2"


# -- node down / up ---------------------------------------------------------------------------


def test_dc_down_replaces_nfs_elsewhere_and_warns_state_may_be_lost() -> None:
    snap = world([node("cpe1", caps=frozenset({"tc"})), dc("dc1"), dc("dc2")],
                 [user(nfs=("firewall", "shaper"), at="cpe1")],
                 [inst("dc1", "alice", "firewall"), inst("cpe1", "alice", "shaper")])
    p = plan(snap, NodeDown(node="dc1"))
    assert kinds(p) == ["migrate", "steer"]
    (m,) = p.of(Migrate)
    assert (m.src, m.dst, m.state_lost) == ("dc1", "dc2", True)
    assert "state may be lost" in m.reason
    assert p.of(Steer)[0].chain == ("dc2-alice-firewall", "cpe1-alice-shaper")


def test_access_node_down_then_up() -> None:
    snap, _ = run(world([node("cpe1"), dc()], [user()]), LOGIN)
    snap, p = run(snap, NodeDown(node="cpe1"))
    assert [(m.src, m.dst, m.state_lost) for m in p.of(Migrate)] == [("cpe1", "dc1", True)]
    assert p.of(Steer) == ()  # nothing to program on a dead switch
    snap, p = run(snap, NodeUp(node="cpe1"))
    assert [(m.src, m.dst, m.state_lost) for m in p.of(Migrate)] == [("dc1", "cpe1", False)]
    assert p.of(Steer)[0].chain == ("cpe1-alice-firewall",)


def test_an_access_node_the_operator_marks_down_keeps_serving_its_users() -> None:
    """(new-user probe, 2026-12-05: `nodes down cpe2` cut its users off) Its switch is up:
    the NF moves out with its state, and the user is steered there to the new node."""
    snap, _ = run(world([node("cpe1"), dc()], [user()]), LOGIN)
    snap = snap.with_node(snap.node("cpe1").model_copy(update={"admin_down": True}))
    snap, p = run(snap, NodeDown(node="cpe1"))
    assert [(m.src, m.dst, m.state_lost) for m in p.of(Migrate)] == [("cpe1", "dc1", False)]
    assert [(s.node, s.chain) for s in p.of(Steer)] == [("cpe1", ("dc1-alice-firewall",))]
    assert "state may be lost" not in p.of(Migrate)[0].reason
    # Nothing new is placed there while it is down, and a fresh login goes elsewhere.
    assert plan(snap, Reconcile()).of(Migrate) == ()
    p2 = plan(snap, UserAssociated(user="alice", node="cpe1", mac=MAC, ip=IP))
    assert [i.node for i in p2.of(Place)] == [] and p2.of(Migrate) == ()
    # Marked up again: the NF comes back to the user's access node.
    snap = snap.with_node(snap.node("cpe1").model_copy(update={"admin_down": False}))
    _, p3 = run(snap, NodeUp(node="cpe1"))
    assert [(m.src, m.dst) for m in p3.of(Migrate)] == [("dc1", "cpe1")]


def test_node_down_with_nowhere_to_go_reports_unplaced() -> None:
    snap = world([node("cpe1", caps=frozenset()), dc("dc1")], [user(at="cpe1")],
                 [inst("dc1", "alice", "firewall")])
    p = plan(snap, NodeDown(node="dc1"))
    assert p.intents == ()
    assert [u.nf for u in p.unplaced] == ["firewall"]


# -- idempotence --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        LOGIN,
        UserAssociated(user="alice", node="cpe2"),
        UserIdle(user="alice"),
        NodeTelemetry(node="cpe1", cpu_util=0.95, mem_free_mb=700, nf_count=2),
        NodeTelemetry(node="cpe1", cpu_util=0.05, mem_free_mb=800, nf_count=2),
        NodeDown(node="cpe1"),
        NodeDown(node="dc1"),
        NodeUp(node="cpe1"),
        Reconcile(),
    ],
    ids=lambda e: e.kind,
)
def test_the_same_event_again_changes_nothing(event: Event) -> None:
    snap = world([node("cpe1"), node("cpe2", caps=frozenset({"tc"})), dc("dc1"), dc("dc2")],
                 [user(nfs=("firewall", "shaper")), user("bob", at="cpe2")])
    snap, _ = run(snap, LOGIN, UserAssociated(user="bob", node="cpe2"))
    snap, first = run(snap, event)
    again = plan(snap, event)
    if isinstance(event, Reconcile | UserAssociated):
        # these restate steering by design (the engine can't see flows); nothing else
        assert again.intents == again.of(Steer)
        before = {st.user: st for st in first.of(Steer)}
        assert all(before.get(st.user, st) == st for st in again.of(Steer))
    else:
        assert again.intents == (), (first, again)


def test_login_where_everything_already_runs_only_restates_steering() -> None:
    snap, first = run(world([node("cpe1"), dc()], [user()]), LOGIN)
    p = plan(snap, LOGIN)
    assert p.intents == first.of(Steer)


def test_login_with_chainless_user_is_steered_straight_out() -> None:
    p = plan(world([node("cpe1")], [user(nfs=())]), LOGIN)
    assert [(i.kind, i.node, i.chain) for i in p.intents] == [("steer", "cpe1", ())]


def test_idle_after_the_session_was_closed_still_unsteers() -> None:
    # The orchestrator may mark the session over before planning; NFs are still there.
    snap = world([node("cpe1")], [user(at="cpe1", active=False)],
                 [inst("cpe1", "alice", "firewall")])
    assert kinds(plan(snap, UserIdle(user="alice"))) == ["unsteer", "release"]


# -- totality: unknown names never raise -------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        UserAssociated(user="mallory", node="cpe1"),
        UserAssociated(user="alice", node="cpe9"),
        UserDisassociated(user="mallory", node="cpe1"),
        UserDisassociated(user="alice", node="cpe9"),
        UserIdle(user="mallory"),
        NodeTelemetry(node="cpe9", cpu_util=0.9, mem_free_mb=1, nf_count=1),
        NodeDown(node="cpe9"),
        NodeUp(node="cpe9"),
    ],
    ids=lambda e: e.kind,
)
def test_unknown_user_or_node_gives_empty_plan_with_reason(event: Event) -> None:
    p = plan(world([node("cpe1"), dc()], [user()]), event)
    assert p.intents == ()
    assert p.reasons and "unknown" in p.reasons[0]


def test_empty_world_is_fine() -> None:
    assert plan(world([]), Reconcile()).intents == ()
    assert plan(world([]), LOGIN).reasons == ("unknown user alice: nothing to do",)


# -- chain order and reconciliation ------------------------------------------------------------


def test_steer_keeps_the_required_chain_order_across_nodes() -> None:
    # shaper first, then firewall; the firewall lands in the DC, the shaper at the edge
    snap = world([node("cpe1", caps=frozenset({"tc"})), dc()], [user(nfs=("shaper", "firewall"))])
    p = plan(snap, LOGIN)
    assert p.of(Steer)[0].chain == ("cpe1-alice-shaper", "dc1-alice-firewall")


def test_reconcile_cleans_up_drift() -> None:
    snap = world(
        [node("cpe1"), node("cpe2"), dc()],
        [user(nfs=("firewall", "shaper"), at="cpe1"), user("bob", at=None, active=False)],
        [
            inst("cpe1", "alice", "firewall", "failed"),  # replaced in place
            inst("cpe1", "alice", "shaper"),
            inst("dc1", "alice", "shaper"),  # duplicate
            inst("cpe1", "alice", "ids"),  # no longer required
            inst("cpe2", "bob", "firewall"),  # session over
            inst("cpe2", "eve", "firewall"),  # owner unknown
            inst("cpe2", "eve", "shaper", "releasing"),  # already going
            inst("cpe2", "operator", "troubleshooter"),  # a probe: its operation's to remove
        ],
    )
    p = plan(snap, Reconcile())
    assert [(i.kind, getattr(i, "instance_id", None)) for i in p.intents] == [
        ("place", "cpe1-alice-firewall"),
        ("steer", None),
        ("release", "dc1-alice-shaper"),
        ("release", "cpe1-alice-ids"),
        ("release", "cpe2-bob-firewall"),
        ("release", "cpe2-eve-firewall"),
    ]
    # the failed firewall is re-created under the same id, so there is nothing to release
    assert p.of(Place)[0].node == "cpe1"


def test_failed_instance_elsewhere_is_released_once_replaced() -> None:
    snap = world([node("cpe1"), dc()], [user(at="cpe1")], [inst("dc1", "alice", "firewall",
                                                                "failed")])
    p = plan(snap, Reconcile())
    assert kinds(p) == ["place", "steer", "release"]
    assert p.of(Release)[0].reason == "failed; replaced by cpe1-alice-firewall"


def test_emptied_chain_steers_straight_out_then_releases() -> None:
    snap = world([node("cpe1")], [user(nfs=(), at="cpe1")], [inst("cpe1", "alice", "firewall")])
    p = plan(snap, Reconcile())
    assert kinds(p) == ["steer", "release"] and p.of(Steer)[0].chain == ()
    assert p.of(Release)[0].reason == "alice no longer requires firewall"


def test_failed_instance_is_kept_while_nothing_replaces_it() -> None:
    snap = world([node("cpe1", caps=frozenset())], [user(at="cpe1")],
                 [inst("cpe1", "alice", "firewall", "failed")])
    p = plan(snap, Reconcile())
    assert p.intents == () and [u.nf for u in p.unplaced] == ["firewall"]


def test_migrating_onto_an_existing_duplicate_reuses_it() -> None:
    snap = world([node("cpe1"), node("cpe2"), dc()], [user(at="cpe1")],
                 [inst("cpe2", "alice", "firewall"), inst("cpe1", "alice", "firewall")])
    p = plan(snap, UserAssociated(user="alice", node="cpe2"))
    assert kinds(p) == ["steer", "unsteer", "release"]
    assert p.of(Release)[0].instance_id == "cpe1-alice-firewall"


def test_reconcile_idle_timeout_backstop() -> None:
    policy = NetfatePolicy(idle_timeout=300)
    snap = world([node("cpe1"), dc()],
                 [user(at="cpe1", last_seen=600), user("bob", at="cpe1", last_seen=900)],
                 [inst("cpe1", "alice", "firewall"), inst("cpe1", "bob", "firewall")], now=1000)
    p = plan(snap, Reconcile(), policy)
    assert [(i.kind, i.user) for i in p.intents] == [
        ("unsteer", "alice"), ("release", "alice"), ("steer", "bob")]


def test_user_kept_on_old_node_when_new_one_and_dc_are_full() -> None:
    snap, _ = run(world([node("cpe1"), node("cpe2", max_nfs=0), dc(max_nfs=0)], [user()]), LOGIN)
    p = plan(snap, UserAssociated(user="alice", node="cpe2"))
    assert p.of(Migrate) == ()
    assert p.of(Steer)[0] == Steer(user="alice", node="cpe2", chain=("cpe1-alice-firewall",),
                                   mac=MAC, ip=IP)
    assert any("keeping it on cpe1" in r for r in p.reasons)


@pytest.mark.parametrize(
    "kw",
    [{"cpu_threshold": 0}, {"mem_threshold": 1.5}, {"reevaluate_delta": -0.1},
     {"idle_timeout": 0}],
)
def test_policy_rejects_bad_thresholds(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        NetfatePolicy(**kw)


# -- the operator's placement (a migration through the API) stands ------------------------------


def _moved_by_operator(pinned: bool) -> Snapshot:
    """alice at cpe1, which has room, and her firewall in the DC: put there by the operator
    (pinned) or left there by an earlier fallback."""
    fw = inst("dc1", "alice", "firewall").model_copy(update={"pinned": pinned})
    return world([node("cpe1"), dc()], [user(at="cpe1")], [fw])


@pytest.mark.parametrize("event", [Reconcile(), NodeTelemetry(node="cpe1", cpu_util=0.6,
                                                              mem_free_mb=800, nf_count=0)],
                         ids=["reconcile", "telemetry"])
def test_an_nf_the_operator_placed_stays_where_it_was_put(event: Event) -> None:
    """The next re-evaluation used to move it back to the access node within seconds (the
    operator's migration undone: seen as a UI test that found the NF gone from the DC)."""
    p = plan(_moved_by_operator(pinned=True), event)
    assert p.of(Migrate) == () and p.of(Place) == ()
    p = plan(_moved_by_operator(pinned=False), event)  # the policy's own choice moves back
    assert [(m.src, m.dst) for m in p.of(Migrate)] == [("dc1", "cpe1")]


def test_a_pinned_nf_still_moves_when_its_node_cannot_serve() -> None:
    snap = _moved_by_operator(pinned=True)
    down = snap.with_node(snap.node("dc1").model_copy(update={"online": False}))
    p = plan(down, NodeDown(node="dc1"))
    assert [(m.src, m.dst) for m in p.of(Migrate)] == [("dc1", "cpe1")]
    marked = snap.with_node(snap.node("dc1").model_copy(update={"admin_down": True}))
    p = plan(marked, Reconcile())
    assert [(m.src, m.dst) for m in p.of(Migrate)] == [("dc1", "cpe1")]
