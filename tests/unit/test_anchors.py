"""The anchors' bookkeeping (orchestrator/anchors.py): when a visited CPE may let a user out
(make), which anchors a core's new state ends, how a held one is kept, and which cores a
late confirmation releases (break). `Switches` is tested with it in test_switches_state."""

from __future__ import annotations

from netfate.controller.model import Location, SwitchState
from netfate.orchestrator.anchors import Anchors

M1, M2 = "02:aa:00:00:00:01", "02:aa:00:00:00:02"
A1 = Location(user="u1", mac=M1, ip="10.90.1.1", port="k-c2", anchor="k-c1")
L1 = Location(user="u1", mac=M1, ip="10.90.1.1", port="k-c2")
L2 = Location(user="u2", mac=M2, ip="10.90.1.2", port="k-c1")


def core(gen: int, *locs: Location) -> SwitchState:
    return SwitchState(node="core", role="pe", generation=gen, locations=locs)


def test_ready_needs_the_anchor_confirmed_and_settled_at_its_core() -> None:
    a = Anchors()
    a.made("core", core(5, A1, L2), None, {"u1": (None, "cpe2")})
    assert a.visits == {"u1": {"cpe2"}} and a.cores == {"u1": {"core"}}
    assert not a.ready("u1", {"core": 5})            # confirmed, not settled
    a.mark_settled({"core": 5})
    assert not a.ready("u1", {"core": 4})            # settled, not confirmed
    assert a.ready("u1", {"core": 6}) and a.all_ready({"core": 5}) == {"u1"}
    assert a.to_settle({"core": 5, "cpe2": 3, "x": None}) == {"cpe2": 3}
    # the same anchor published again does not restart the wait
    a.made("core", core(7, A1), core(5, A1, L2), {"u1": (None, "cpe2")})
    assert a.gen == {"u1": 5}


def test_a_held_anchor_is_kept_in_place_and_released_by_its_cpes_confirmation() -> None:
    a = Anchors()
    prev = core(5, L2, A1)
    a.made("core", prev, None, {"u1": (None, "cpe2")})
    new = core(0, L2, L1)
    assert a.ending("core", new) == ["u1"] and a.ending("pe9", new) == []
    assert Anchors.hold(new, prev, {"u1"}).locations == (L2, A1)
    assert Anchors.hold(core(0, L2), prev, {"u1"}).locations == (L2, A1)  # gone: put back
    a.unconfirmed["cpe2"] = 9
    assert a.released_by("cpe2", 8) == [] and a.released_by("cpe3", 20) == []
    assert a.released_by("cpe2", 9) == ["core"] and a.unconfirmed == {}
    a.end(["u1"])
    assert a.gen == a.cores == a.visits == {}
