"""Engine models: validation, snapshot lookups, JSON round trips, and the plan simulator."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from netfate.engine import (
    EVENT_ADAPTER,
    INTENT_ADAPTER,
    Migrate,
    NodeDown,
    NodeTelemetry,
    Place,
    Plan,
    Release,
    Snapshot,
    Steer,
    UserAssociated,
    UserView,
)
from netfate.engine.simulate import apply_plan, record_event

from .test_engine_support import FIREWALL, SHAPER, dc, inst, node, user, world


def test_mem_util_and_clamping() -> None:
    assert node("a", total=1000, free=250).mem_util == pytest.approx(0.75)
    assert node("a", total=1000, free=1200).mem_util == 0.0


@pytest.mark.parametrize(
    "build",
    [
        lambda: node("Bad Name"),
        lambda: node("a", cpu=1.5),
        lambda: node("a", total=-1),
        lambda: UserView(name="u", required_nfs=("firewall", "Bad")),
        lambda: UserView(name="u", mac="not-a-mac"),
        lambda: UserView(name="u", ip="10.0.0.300"),
        lambda: world([node("a"), node("a")]),
        lambda: world([], instances=[inst("a", "u", "firewall"), inst("a", "u", "firewall")]),
        lambda: UserAssociated(user="u", node="-x"),
        lambda: NodeTelemetry(node="a", cpu_util=-0.1, mem_free_mb=0, nf_count=0),
    ],
)
def test_invalid_input_is_rejected_at_the_boundary(build: object) -> None:
    with pytest.raises(ValidationError):
        build()  # type: ignore[operator]


def test_models_are_frozen() -> None:
    with pytest.raises(ValidationError):
        node("a").cpu_util = 0.5


def test_unknown_memory_counts_as_full() -> None:
    assert node("a", total=0, free=0).mem_util == 1.0


def test_repeated_nf_in_chain_is_dropped() -> None:
    u = UserView(name="u", required_nfs=("firewall", "shaper", "firewall"))
    assert u.required_nfs == ("firewall", "shaper")


def test_mac_is_normalised() -> None:
    assert UserView(name="u", mac="02:AA:00:00:00:01").mac == "02:aa:00:00:00:01"


def test_snapshot_lookups() -> None:
    snap = world([node("cpe1"), dc("dc1", online=False)], [user(at="cpe1")],
                 [inst("cpe1", "alice", "firewall"), inst("dc1", "alice", "shaper")])
    assert snap.node("cpe1") is snap.nodes[0] and snap.node(None) is None
    assert snap.user("alice") is snap.users[0] and snap.user("bob") is None
    assert snap.entry("firewall") == FIREWALL and snap.entry("nope") is None
    assert [i.nf for i in snap.instances_of("alice")] == ["firewall", "shaper"]
    assert [i.nf for i in snap.instances_on("dc1")] == ["shaper"]
    assert snap.is_online("cpe1") and not snap.is_online("dc1") and not snap.is_online("zz")
    assert [n.name for n in snap.dc_nodes()] == ["dc1"]
    moved = snap.with_node(node("cpe1", cpu=0.9)).with_node(node("cpe3"))
    assert moved.node("cpe1").cpu_util == 0.9  # type: ignore[union-attr]
    assert [n.name for n in moved.nodes] == ["cpe1", "dc1", "cpe3"]
    assert snap.node("cpe1").cpu_util == 0.1  # type: ignore[union-attr]  # original untouched


def test_events_and_intents_round_trip_as_json() -> None:
    for ev in (UserAssociated(user="a", node="b", mac="02:00:00:00:00:01"), NodeDown(node="n")):
        assert EVENT_ADAPTER.validate_json(EVENT_ADAPTER.dump_json(ev)) == ev
    for it in (
        Place(user="a", nf="firewall", node="n", instance_id="n-a-firewall"),
        Migrate(user="a", nf="f", instance_id="x", src="s", dst="d", new_instance_id="y"),
        Steer(user="a", node="n", chain=("x", "y")),
    ):
        assert INTENT_ADAPTER.validate_json(INTENT_ADAPTER.dump_json(it)) == it
    p = Plan(intents=(Steer(user="a", node="n", chain=("x",)),), reasons=("why",))
    assert Plan.model_validate_json(p.model_dump_json()) == p
    assert p.of(Steer) == p.intents and p.of(Place) == ()


def test_snapshot_round_trips_as_json() -> None:
    snap = world([node("cpe1"), dc()], [user(at="cpe1")], [inst("cpe1", "alice", "firewall")])
    again = Snapshot.model_validate_json(snap.model_dump_json())
    assert again == snap and again.user("alice") == snap.user("alice")


def test_simulator_tracks_instances_and_capacity() -> None:
    snap = world([node("cpe1", free=800, nfs=0), dc("dc1", free=1000, nfs=1)],
                 [user(at="cpe1")], [inst("dc1", "alice", "shaper")])
    p = Plan(intents=(
        Place(user="alice", nf="firewall", node="cpe1", instance_id="cpe1-alice-firewall"),
        Migrate(user="alice", nf="shaper", instance_id="dc1-alice-shaper", src="dc1",
                dst="cpe1", new_instance_id="cpe1-alice-shaper"),
        Release(user="alice", nf="ghost", instance_id="nope", node="cpe1"),
    ))
    after = apply_plan(snap, p)
    assert sorted(i.instance_id for i in after.instances) == [
        "cpe1-alice-firewall", "cpe1-alice-shaper"]
    cpe1, dc1 = after.node("cpe1"), after.node("dc1")
    assert cpe1 is not None and dc1 is not None
    assert (cpe1.mem_free_mb, cpe1.nf_count) == (800 - FIREWALL.memory_mb - SHAPER.memory_mb, 2)
    assert (dc1.mem_free_mb, dc1.nf_count) == (1000 + SHAPER.memory_mb, 0)


def test_record_event_updates_what_the_orchestrator_stores() -> None:
    snap = world([node("cpe1"), node("cpe2")], [user(at="cpe1")])
    moved = record_event(snap, UserAssociated(user="alice", node="cpe2", ip="10.0.0.7"))
    u = moved.user("alice")
    assert u is not None and (u.access_node, u.ip, u.session_active) == ("cpe2", "10.0.0.7", True)
    down = record_event(snap, NodeDown(node="cpe1"))
    assert not down.is_online("cpe1")
    assert record_event(snap, NodeDown(node="zz")) is snap
