"""What an agent reads out of its NFs for the orchestrator: one NF's state document, the
documents of several NFs in one reply (the orchestrator's checkpoint pass: one command per
node and batch, not one per NF), and an NF's status report. Each runs in a worker thread."""

from __future__ import annotations

import json
from typing import Any

from netfate.node import NodeDrivers


def export_state(node: NodeDrivers, instance_id: str) -> dict[str, Any]:
    """The NF's state document (`netfate-state/1`, drivers/nf_state.py)."""
    return node.driver_of(instance_id).export_state(instance_id)


def export_states(node: NodeDrivers, instance_ids: list[str], budget: int
                  ) -> dict[str, Any]:
    """{"states": {id: document}, "errors": {id: why}, "left": [id]}: each NF exported in
    turn. One that fails (gone, not exportable, its tool failed) costs its own entry only.
    Once the documents reach `budget` bytes of JSON (the bus's largest message, with room
    for the rest of the reply), the NFs not exported yet are `left` for another command;
    the first document always goes, so every command makes progress."""
    states: dict[str, Any] = {}
    errors: dict[str, str] = {}
    size = 0
    ids = list(dict.fromkeys(instance_ids))
    for k, iid in enumerate(ids):
        try:
            doc = export_state(node, iid)
        except Exception as exc:  # one NF's failure must not lose the others' documents
            errors[iid] = f"{type(exc).__name__}: {exc}"
            continue
        n = len(json.dumps(doc, separators=(",", ":")))
        if states and size + n > budget:
            return {"states": states, "errors": errors, "left": ids[k:]}
        states[iid] = doc
        size += n
    return {"states": states, "errors": errors, "left": []}


def nf_status(node: NodeDrivers, instance_id: str) -> dict[str, Any]:
    """The NF's state and its own status report (counters, cgroup memory), as JSON."""
    info = node.driver_of(instance_id).status(instance_id)
    return {"state": info.state.value, "detail": info.detail}
