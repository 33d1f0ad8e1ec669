"""The control-plane bench's reading of the records: an event whose operation a killed
replica left and the leader ended is the fault's, not an error, and the users' state at the
end is checked against where their last event put them."""

from __future__ import annotations

import asyncio
from typing import Any

from netfate.bench.control_plane.load import Sample
from netfate.bench.control_plane.report import served_at_end, settle_from_records, summarise
from netfate.orchestrator import orphans


class FakeApi:
    """What GET answers, path by path (a list: one answer per call, the last one kept)."""

    def __init__(self, answers: dict[str, list[tuple[int, Any]]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def request(self, method: str, path: str, json: Any = None,
                      timeout: float = 30.0) -> tuple[int, Any]:
        self.calls.append(path)
        got = self.answers[path]
        return got.pop(0) if len(got) > 1 else got[0]


def _op(op_id: str, state: str, t: float, detail: str | None = None) -> dict[str, Any]:
    return {"id": op_id, "operation_state": state, "state_entered_time": t,
            "error": {"detail": detail} if detail else None}


def _sample(user: str, op: str) -> Sample:
    return Sample("roam", "roam", 100.0, user, "cpe1", t_sent=100.0, t_accepted=100.01,
                  ops=[("migrate", op)], error="operation ROLLED_BACK")


def test_an_operation_ended_for_a_killed_replica_is_cut_short_and_any_other_is_an_error() -> None:
    ops = [_op("a", "COMPLETED", 100.05),
           _op("b", "ROLLED_BACK", 102.0, f"{orphans.WHY}; rolled back"),
           _op("c", "ROLLED_BACK", 100.2, "agent cpe1 refused: no memory; rolled back")]
    samples = [_sample("u1", "a"), _sample("u2", "b"), _sample("u3", "c")]
    samples[0].error = None
    fixed = asyncio.run(settle_from_records(
        FakeApi({"/api/v1/vnf_lcm_op_occs": [(200, ops)]}), samples))  # type: ignore[arg-type]
    assert [s.cut_short for s in samples] == [False, True, False]
    assert [s.error for s in samples] == [None, None, "operation ROLLED_BACK"]
    assert fixed["still_processing"] == 0
    out = summarise(samples, 10.0)
    assert out["events_sent"] == 3 and out["events_handled"] == 1
    assert out["events_cut_short"] == 1 and out["errors"] == 1
    assert out["placement_ms"]["n"] == 1  # the cut-short event has no latency


def _inst(owner: str, node: str, desired: str = "present") -> dict[str, Any]:
    return {"owner": owner, "node_name": node, "desired_state": desired}


def test_served_at_end_waits_for_the_repairs_and_names_who_is_not_served() -> None:
    at: dict[str, str | None] = {"u1": "cpe1", "u2": "cpe2", "u3": None}
    before = [_inst("u1", "cpe1"), _inst("u2", "cpe9"), _inst("u3", "cpe3", "absent")]
    after = [_inst("u1", "cpe1"), _inst("u2", "cpe2"), _inst("u2", "cpe9", "absent")]
    api = FakeApi({"/api/v1/vnf_instances": [(200, before), (200, after)]})
    out = asyncio.run(served_at_end(api, at, 5.0))  # type: ignore[arg-type]
    assert out["not_served"] == 0 and out["users"] == 3 and len(api.calls) == 2
    # Never converging: named, after the wait, and an idle user with an NF still wanted too.
    api = FakeApi({"/api/v1/vnf_instances": [(200, [*before, _inst("u3", "cpe3")])]})
    out = asyncio.run(served_at_end(api, at, 0.0))  # type: ignore[arg-type]
    assert out["not_served"] == 2
    assert out["examples"] == [{"user": "u2", "last_event_at": "cpe2"},
                               {"user": "u3", "last_event_at": None}]
    # The orchestrator not answering is not "all served".
    out = asyncio.run(served_at_end(
        FakeApi({"/api/v1/vnf_instances": [(503, None)]}), at, 0.0))  # type: ignore[arg-type]
    assert out["not_served"] is None
