"""Node failure in the default policy: only what ran on the failed node moves, to a node of
the right tier, and its users are steered to it. Pure."""

from __future__ import annotations

from netfate.engine import Migrate, NodeDown, NodeUp, Steer, plan

from .test_engine_support import dc, inst, node, user, world


def test_nfs_on_other_nodes_stay_when_the_users_access_node_fails() -> None:
    # alice is at cpe2 now, still served by her firewall on cpe1 (anchored there mid-roam):
    # cpe2 failing leaves it alone, nothing in the DC could serve her better
    snap = world([node("cpe1"), node("cpe2"), dc()], [user(at="cpe2")],
                 [inst("cpe1", "alice", "firewall")])
    p = plan(snap, NodeDown(node="cpe2"))
    assert p.intents == ()


def test_only_the_failed_nodes_nfs_move_and_the_chain_is_steered_again() -> None:
    snap = world([node("cpe1", caps=frozenset({"tc"})), dc("dc1"), dc("dc2")],
                 [user(nfs=("firewall", "shaper"), at="cpe1")],
                 [inst("dc1", "alice", "firewall"), inst("cpe1", "alice", "shaper")])
    p = plan(snap, NodeDown(node="dc1"))
    assert [(m.nf, m.src, m.dst, m.state_lost) for m in p.of(Migrate)] == [
        ("firewall", "dc1", "dc2", True)]
    assert p.of(Steer)[0].chain == ("dc2-alice-firewall", "cpe1-alice-shaper")


def test_a_node_back_up_gets_its_users_nfs_back() -> None:
    snap = world([node("cpe1"), node("cpe2"), dc()], [user(at="cpe2")],
                 [inst("cpe1", "alice", "firewall")])
    p = plan(snap, NodeUp(node="cpe2"))
    assert [(m.src, m.dst, m.state_lost) for m in p.of(Migrate)] == [("cpe1", "cpe2", False)]
    assert p.of(Steer)[0].node == "cpe2"
