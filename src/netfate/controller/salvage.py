"""A desired state that does not validate whole, salvaged entry by entry. Pure.

The orchestrator builds only valid states (orchestrator/switch_state.py leaves bad entries
out), but the controller is the last line: a state one entry spoils (a publisher of another
version, a record the orchestrator's checks missed) must not leave the switch frozen at an
older state. So the controller keeps every entry that is valid on its own and consistent
with those kept before it, in the order given, and reports the others (defence in depth,
as the issue #16's "one bad entry never stops a switch's state from being built" asks).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from netfate.controller.model import Anchored, Client, Location, SwitchState, TSRule

# The lists of a SwitchState whose entries stand on their own, and their models.
ENTRY_LISTS: dict[str, type[Any]] = {"users": Client, "anchored": Anchored,
                                     "locations": Location, "ts_rules": TSRule}


def _short(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}"
                     for e in exc.errors()[:3])


def salvage(data: bytes | str) -> tuple[SwitchState | None, list[str]]:
    """The state in `data` (JSON), with entries that spoil it left out, and why each was.
    None when even its frame (node, role, ports) is not valid, or it is not JSON."""
    try:
        return SwitchState.model_validate_json(data), []
    except ValidationError:
        pass
    try:
        raw = json.loads(data)
    except ValueError as exc:
        return None, [f"not JSON: {exc}"]
    if not isinstance(raw, dict):
        return None, ["not a JSON object"]
    frame: dict[str, Any] = {k: v for k, v in raw.items() if k not in ENTRY_LISTS}
    try:
        state = SwitchState.model_validate(frame)
    except ValidationError as exc:
        return None, [f"the switch itself: {_short(exc)}"]
    left_out: list[str] = []
    kept: dict[str, list[Any]] = {k: [] for k in ENTRY_LISTS}
    for key in ENTRY_LISTS:
        items = raw.get(key) or []
        if not isinstance(items, list):
            left_out.append(f"{key}: not a list")
            continue
        for i, item in enumerate(items):
            try:
                # Each entry checked alone first; kept entries go in as model instances,
                # which pydantic does not check again: each trial only runs the state's
                # own cross-entry checks (duplicates, ports).
                entry = ENTRY_LISTS[key].model_validate(item)
                state = SwitchState.model_validate({**frame, **kept, key: [*kept[key], entry]})
            except ValidationError as exc:
                name = (item.get("name") or item.get("user") or item.get("rule_id")
                        if isinstance(item, dict) else None)
                left_out.append(f"{key}[{i}] {name or '?'}: {_short(exc)}")
                continue
            kept[key].append(entry)
    return state, left_out
