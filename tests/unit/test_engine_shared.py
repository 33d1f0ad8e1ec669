"""Shared NFs (NNF paper IV.E): one instance per node serves every user who requires it,
counts its active users (NetFATE Table II) and stops only with the last of them. Pure."""

from __future__ import annotations

from netfate.engine import (
    CatalogueEntry,
    InstanceView,
    Migrate,
    NodeDown,
    Place,
    Release,
    Steer,
    Unsteer,
    UserAssociated,
    UserIdle,
    plan,
)

from .test_engine_support import FIREWALL, MAC, dc, node, user, world

NAT = CatalogueEntry(name="nat", memory_mb=16, shared=True)
CAT = (FIREWALL, NAT)
BOB_MAC = "02:aa:00:00:00:02"


def nat(node: str, owner: str, users: tuple[str, ...]) -> InstanceView:
    return InstanceView(instance_id=f"{node}-{owner}-nat", nf="nat", owner=owner, node=node,
                        state="running", users=users)


def test_a_second_user_joins_the_shared_instance_instead_of_placing_one() -> None:
    snap = world([node("cpe1"), dc()],
                 [user("alice", ("nat",), at="cpe1"), user("bob", ("nat",), mac=BOB_MAC)],
                 [nat("cpe1", "alice", ("alice",))], CAT)
    p = plan(snap, UserAssociated(user="bob", node="cpe1", mac=BOB_MAC))
    assert p.of(Place) == () and p.of(Release) == ()
    assert [s.chain for s in p.of(Steer)] == [("cpe1-alice-nat",)]
    assert any("joins shared nat" in r for r in p.reasons)


def test_releasing_one_user_keeps_the_instance_for_the_others() -> None:
    both = nat("cpe1", "alice", ("alice", "bob"))
    snap = world([node("cpe1"), dc()],
                 [user("alice", ("nat",), at="cpe1"), user("bob", ("nat",), at="cpe1")],
                 [both], CAT)
    p = plan(snap, UserIdle(user="alice"))  # the owner leaves first
    assert p.of(Unsteer) == (Unsteer(user="alice", node="cpe1"),)
    assert p.of(Release) == ()
    assert any("kept for 1 other user" in r for r in p.reasons)
    p = plan(snap, UserIdle(user="bob"))
    assert p.of(Unsteer) == (Unsteer(user="bob", node="cpe1"),) and p.of(Release) == ()


def test_the_last_user_leaving_releases_it_whoever_placed_it() -> None:
    snap = world([node("cpe1"), dc()], [user("alice", ("nat",)), user("bob", ("nat",), at="cpe1")],
                 [nat("cpe1", "alice", ("bob",))], CAT)
    p = plan(snap, UserIdle(user="bob"))
    assert [(r.instance_id, r.user) for r in p.of(Release)] == [("cpe1-alice-nat", "alice")]


def test_a_roaming_user_leaves_a_shared_instance_in_use_and_never_migrates_it() -> None:
    snap = world([node("cpe1"), node("cpe2"), dc()],
                 [user("alice", ("nat",), at="cpe1"), user("bob", ("nat",), at="cpe1",
                                                          mac=BOB_MAC)],
                 [nat("cpe1", "alice", ("alice", "bob"))], CAT)
    p = plan(snap, UserAssociated(user="bob", node="cpe2", mac=BOB_MAC))
    assert p.of(Migrate) == () and p.of(Release) == ()
    assert [(x.node, x.instance_id) for x in p.of(Place)] == [("cpe2", "cpe2-bob-nat")]
    assert [s.chain for s in p.of(Steer)] == [("cpe2-bob-nat",)]
    assert p.of(Unsteer) == (Unsteer(user="bob", node="cpe1"),)
    # alone on it, the user's roam releases it after the new steering (make before break)
    alone = world([node("cpe1"), node("cpe2"), dc()],
                  [user("alice", ("nat",), at="cpe1")], [nat("cpe1", "alice", ("alice",))], CAT)
    p = plan(alone, UserAssociated(user="alice", node="cpe2", mac=MAC))
    assert [i.kind for i in p.intents] == ["place", "steer", "unsteer", "release"]


def test_a_user_who_no_longer_requires_it_leaves_it_and_is_steered_without_it() -> None:
    snap = world([node("cpe1"), dc()],
                 [user("alice", ("nat",), at="cpe1"), user("bob", ("firewall",), at="cpe1",
                                                          mac=BOB_MAC)],
                 [nat("cpe1", "alice", ("alice", "bob")),
                  InstanceView(instance_id="cpe1-bob-firewall", nf="firewall", owner="bob",
                               node="cpe1", state="running", users=("bob",))], CAT)
    p = plan(snap, UserAssociated(user="bob", node="cpe1", mac=BOB_MAC))
    assert p.of(Release) == ()
    assert [s.chain for s in p.of(Steer)] == [("cpe1-bob-firewall",)]


def test_a_node_down_replans_every_user_of_a_shared_instance_there() -> None:
    x = frozenset({"x"})
    snap = world([node("cpe1", caps=frozenset()), dc("dc1", caps=x), dc("dc2", caps=x)],
                 [user("alice", ("nat",), at="cpe1"), user("bob", ("nat",), at="cpe1",
                                                          mac=BOB_MAC)],
                 [nat("dc1", "alice", ("alice", "bob"))],
                 (FIREWALL, NAT.model_copy(update={"capabilities": frozenset({"x"})})))
    p = plan(snap, NodeDown(node="dc1"))
    # one new instance in dc2 (placed for the first of them), both steered through it
    assert [(x.node, x.instance_id) for x in p.of(Place)] == [("dc2", "dc2-alice-nat")]
    assert {(s.user, s.chain) for s in p.of(Steer)} == {("alice", ("dc2-alice-nat",)),
                                                       ("bob", ("dc2-alice-nat",))}
    # the dead one is released once, whoever else it served
    assert [r.instance_id for r in p.of(Release)] == ["dc1-alice-nat"]
