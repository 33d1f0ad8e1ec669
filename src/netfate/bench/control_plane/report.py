"""The figures: each event's end read back from the orchestrator's records, and the samples
summarised (netfate.bench.stats: one method for every benchmark)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from netfate.bench.control_plane.api import ERRORS, Api
from netfate.bench.control_plane.load import Sample
from netfate.bench.control_plane.params import DONE_STATES
from netfate.bench.stats import summary
from netfate.orchestrator import orphans

LATENCY_OBSERVED_VIA = (
    "from when the associate request was due (open loop) to the instantiate/migrate "
    "operation's COMPLETED: its state_entered_time as the orchestrator recorded it (read back "
    "from GET /vnf_lcm_op_occs at the end); completion is followed live on the SSE stream GET "
    "/events (op events) and, for operations it has not reported within 3 s (the hub drops "
    "events for a slow reader), by listing the PROCESSING ones once a second")


async def settle_from_records(api: Api, samples: list[Sample]) -> dict[str, Any]:
    """Each event's end from the operations' own records (state and state_entered_time, as
    the orchestrator stamped them), which the SSE stream may have missed or seen late."""
    status, body = await api.request("GET", "/api/v1/vnf_lcm_op_occs", timeout=120)
    if status != 200:
        return {"unavailable": 1}
    ops = {o["id"]: (float(o["state_entered_time"]), o["operation_state"]) for o in body}
    orphaned = {o["id"] for o in body if orphans.WHY in str((o.get("error") or {}).get("detail"))}
    fixed: dict[str, Any] = {"late_or_missed_by_sse": 0, "still_processing": 0}
    why: dict[str, int] = {}
    for o in body:
        if o["operation_state"] not in ("COMPLETED", "PROCESSING"):
            detail = str((o.get("error") or {}).get("detail", "?"))
            key = " ".join(w if not any(c.isdigit() for c in w) else "#"
                           for w in detail.split())[:120]
            why[key] = why.get(key, 0) + 1
    fixed["failed_ops_why"] = dict(sorted(why.items(), key=lambda kv: -kv[1])[:8])
    for s in samples:
        if not s.ops or s.t_accepted is None:
            continue
        ends = [ops.get(op) for _, op in s.ops]
        if any(e is None or e[1] not in DONE_STATES for e in ends):
            fixed["still_processing"] += 1
            continue
        t_done = max(e[0] for e in ends if e is not None)
        bad = [e[1] for e in ends if e is not None and e[1] != "COMPLETED"]
        if s.error == "timeout" or s.t_done is None:
            fixed["late_or_missed_by_sse"] += 1
        s.cut_short = bool(bad) and all(
            op in orphaned for (_, op), e in zip(s.ops, ends, strict=True)
            if e is not None and e[1] != "COMPLETED")
        s.error = (None if s.cut_short else f"operation {bad[0]}") if bad else (
            None if s.error == "timeout" else s.error)
        s.t_done = t_done
    return fixed


def summarise(samples: list[Sample], rate: float) -> dict[str, Any]:
    """Events sent and handled, their rate, and latencies in ms (placement: events with a
    place or migrate; by operation kind; accepted: until the API's 202)."""
    placement: list[float] = []
    by_op: dict[str, list[float]] = {"place": [], "migrate": [], "release": []}
    accept: list[float] = []
    errors: dict[str, int] = {}
    handled = 0
    first_due = min((s.t_due for s in samples), default=0.0)
    last_done = first_due
    refused = cut_short = 0
    for s in samples:
        if s.refused:
            refused += 1
            continue
        if s.cut_short:  # no latency: it ended by the fault, not by completing
            cut_short += 1
            continue
        if s.t_accepted is not None:
            accept.append((s.t_accepted - s.t_due) * 1000)
        if s.error:
            key = s.error.split(":")[0] if not s.error.startswith("operation") else s.error
            errors[key] = errors.get(key, 0) + 1
            continue
        if s.t_done is None:
            continue
        handled += 1
        last_done = max(last_done, s.t_done)
        ms = (s.t_done - s.t_due) * 1000
        kinds = {k for k, _ in s.ops}
        for k in kinds:
            by_op[k].append(ms)
        if kinds & {"place", "migrate"}:
            placement.append(ms)
    span = max(last_done - first_due, 1e-9)
    return {
        "events_sent": len(samples),
        "events_handled": handled,
        # Refused with 429 past capacity (graceful overload): not admitted, not errors.
        "events_refused": refused,
        # Their operation cut short by a killed replica and ended by the leader (the user
        # repaired since: see "served_at_end"); neither handled nor errors.
        "events_cut_short": cut_short,
        "offered_events_per_s": rate,
        "handled_events_per_s": round(handled / span, 1) if samples else 0.0,
        "placement_ms": summary(placement),
        "by_operation_ms": {k: summary(v) for k, v in by_op.items()},
        "accepted_ms": summary(accept),
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "event_kinds": {k: sum(1 for s in samples if s.kind == k)
                        for k in ("login", "roam", "idle")},
    }


def per_event(cpu_s: float | None, events: int) -> float | None:
    """CPU milliseconds per event handled."""
    return round(1000 * cpu_s / events, 2) if cpu_s is not None and events else None


async def served_at_end(api: Api, at: dict[str, str | None], wait_s: float) -> dict[str, Any]:
    """Whether every user's state is where their last event put it, as the orchestrator
    records it: one firewall wanted on the node a user last associated at, none for a user
    who went idle. Looked at every 0.5 s for up to ``wait_s`` s (repairs of events a fault cut
    short may still be converging); the users that are not, and how long it took."""
    t0 = time.monotonic()
    wrong: list[str] = []
    known = False
    while True:
        try:
            status, body = await api.request("GET", "/api/v1/vnf_instances", timeout=60)
        except ERRORS:
            status, body = 0, None
        if status == 200:
            known = True
            wanted: dict[str, list[str]] = {}
            for x in body:
                if x["desired_state"] == "present":
                    wanted.setdefault(x["owner"], []).append(x["node_name"])
            wrong = sorted(u for u, node in at.items()
                           if wanted.get(u, []) != ([node] if node is not None else []))
            if not wrong:
                break
        if time.monotonic() - t0 >= wait_s:
            break
        await asyncio.sleep(0.5)
    return {"users": len(at), "not_served": len(wrong) if known else None,
            "examples": [{"user": u, "last_event_at": at[u]} for u in wrong[:5]],
            "after_s": round(time.monotonic() - t0, 1)}
