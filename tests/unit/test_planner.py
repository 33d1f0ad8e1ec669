"""The coordinator's planner, pure: each lifecycle operation's steps, its undo steps and its
commit, in order, for the engine's intents and direct requests. No database, no bus."""

from __future__ import annotations

from dataclasses import replace

from netfate.engine import Migrate, Place, Release, Steer, Unsteer
from netfate.orchestrator import planner as p

FACTS = p.InstanceFacts(node="cpe1", owner="user1", nf="firewall", config={"x": 1},
                        exportable=True, node_online=True)


def test_instantiate_wants_the_nf_pushes_and_rolls_back_to_absent() -> None:
    occ = p.instantiate("op1", "cpe1", "user1", "firewall", "i1")
    assert occ.steps == (p.Want("cpe1", "user1", "firewall", "i1", None),
                         p.Push("cpe1", "running", "i1"))
    # the undo drops only its own NF (another owner's with the same id stays)
    assert occ.undo == (p.Drop("i1", "user1", "firewall"), p.Retract("cpe1"))
    assert occ.rolled_back and occ.commit == () and occ.title == "instantiation failed"


def test_terminate_is_not_rolled_back_and_a_gone_instance_completes_at_once() -> None:
    occ = p.terminate("op1", "i1", "cpe1")
    assert occ.steps == (p.Drop("i1"), p.Push("cpe1", "gone", "i1"))
    assert not occ.rolled_back and occ.undo == ()
    assert p.terminate("op2", "i1", None).steps == ()


def test_update_restores_the_old_config_on_failure() -> None:
    occ = p.update("op1", "i1", "cpe1", {"old": 1}, {"new": 2})
    assert occ.steps == (p.Configure("i1", {"new": 2}), p.Push("cpe1", "ok", "i1"))
    assert occ.undo == (p.Configure("i1", {"old": 1}), p.Retract("cpe1"))


def test_migration_is_make_before_break() -> None:
    occ = p.migrate("op1", "i1", FACTS, "cpe2", "i2", deferred=True)
    assert occ.steps == (p.Want("cpe2", "user1", "firewall", "i2", {"x": 1}),
                         p.Push("cpe2", "running", "i2", lap="instantiate"),
                         p.MoveState("cpe1", "i1", "cpe2", "i2"))
    # the source goes only once the destination runs with its state
    assert occ.commit == (p.Drop("i1"), p.ReleaseSource("cpe1", deferred=True))
    assert occ.undo == (p.Drop("i2", "user1", "firewall"), p.Retract("cpe2"))
    assert occ.timings and occ.rolled_back


def test_migration_moves_no_state_it_cannot_export_or_from_an_offline_node() -> None:
    for facts in (replace(FACTS, exportable=False), replace(FACTS, node_online=False)):
        occ = p.migrate("op1", "i1", facts, "cpe2", "i2")
        assert not any(isinstance(s, p.MoveState) for s in occ.steps)
        assert occ.commit[-1] == p.ReleaseSource("cpe1", deferred=False)


def test_a_failover_restores_the_last_checkpoint_of_an_exportable_nf() -> None:
    occ = p.migrate("op1", "i1", replace(FACTS, node_online=False), "dc1", "i2")
    assert occ.steps[-1] == p.RestoreState("i1", "dc1", "i2")
    assert occ.commit == (p.Drop("i1"), p.ReleaseSource("cpe1", deferred=False))
    occ = p.migrate("op1", "i1", replace(FACTS, node_online=False, exportable=False), "dc1",
                    "i2")
    assert not any(isinstance(s, p.RestoreState) for s in occ.steps)


def test_migrating_an_instance_that_is_gone_fails_without_rollback() -> None:
    occ = p.migrate("op1", "i1", None, "cpe2", "i2")
    assert [type(s) for s in occ.steps] == [p.Fail] and not occ.rolled_back


def test_a_plan_becomes_occurrences_and_steering_steps_in_order() -> None:
    intents = [
        Place(user="user2", nf="firewall", node="cpe1", instance_id="cpe1-user2-firewall"),
        Migrate(user="user1", nf="firewall", instance_id="i1", src="cpe1", dst="cpe2",
                new_instance_id="i2"),
        Steer(user="user1", node="cpe2", chain=("i2",), mac="02:aa:00:00:00:01",
              ip="10.90.1.1"),
        Unsteer(user="user1", node="cpe1"),
        Release(user="user3", nf="firewall", instance_id="i3", node="cpe3"),
        Release(user="user4", nf="firewall", instance_id="gone", node="cpe3"),
    ]
    facts = {"i1": FACTS, "i3": p.InstanceFacts(node="cpe3", owner="user3", nf="firewall")}
    assert p.touched(intents) == ["i1", "i3", "gone"]
    place, move, steer, unsteer, release, gone = p.plan_steps(
        intents, ["o1", "o2", None, None, "o3", "o4"], facts)
    assert isinstance(place, p.Occurrence) and place.op_id == "o1"
    # plan migrations release their source after the plan's steering; a failed one keeps
    # the user's steering as it is
    assert isinstance(move, p.Occurrence) and move.holds_steering == "user1"
    assert move.commit[-1] == p.ReleaseSource("cpe1", deferred=True)
    assert steer == p.SteerStep("user1", "cpe2", ("i2",), "02:aa:00:00:00:01", "10.90.1.1")
    assert unsteer == p.UnsteerStep("user1", "cpe1")
    assert isinstance(release, p.Occurrence) and release.steps[-1] == p.Push("cpe3", "gone",
                                                                            "i3")
    assert isinstance(gone, p.Occurrence) and gone.steps == ()


def test_lifecycle_intents_without_an_occurrence_run_nothing() -> None:
    intents = [Place(user="u", nf="firewall", node="cpe1", instance_id="cpe1-u-firewall")]
    assert p.plan_steps(intents, [None], {}) == [None]
