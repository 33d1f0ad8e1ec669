"""A node's switch as the troubleshooting report reads it: the flows that name a user, and
every port's state (Glasgow paper, section V.B: the question "collects each node's flow
tables"; the orchestrator asks each probed node through the bus, orchestrator/troubleshoot).

Bounded: at most `DumpSpec.max_flows` flows go back (the busiest first), with the total, so
a switch with thousands of users' flows never makes a reply larger than the bus allows.
"""

from __future__ import annotations

from typing import Any

from netfate.bus.messages import DumpSpec
from netfate.interfaces import SwitchInspector


def _names(value: Any) -> set[str]:
    """The strings a match field's value stands for: the value, or a masked value's value."""
    if isinstance(value, (tuple, list)) and value:
        value = value[0]
    return {str(value).lower()}


def mentions(flow: dict[str, Any], words: set[str]) -> bool:
    """Does the flow's match name one of `words` (lower case) exactly?"""
    match = flow.get("match") or {}
    return any(_names(v) & words for v in match.values())


def dump(network: SwitchInspector, lsi: str, spec: DumpSpec) -> dict[str, Any]:
    """{"flows": [...], "flows_total": n, "flows_matching": m, "ports": {name: {"config":
    [...], "state": [...]}}}: the flows naming one of the spec's mentions (all of them when
    it names none), busiest first, at most spec.max_flows. The network driver's errors
    (NotFound: no such LSI; DriverError: the switch refused)."""
    flows = network.dump_flows(lsi)
    words = {m.lower() for m in spec.mentions}
    chosen = [f for f in flows if not words or mentions(f, words)]
    chosen.sort(key=lambda f: (-int(f.get("packets") or 0), int(f.get("table_id") or 0),
                               -int(f.get("priority") or 0)))
    ports = {name: {"config": cfg, "state": st}
             for name, (cfg, st) in sorted(network.port_states(lsi).items())}
    return {"flows": [_jsonable(f) for f in chosen[:spec.max_flows]],
            "flows_total": len(flows), "flows_matching": len(chosen), "ports": ports}


def _jsonable(flow: dict[str, Any]) -> dict[str, Any]:
    """A flow with its match values as JSON has them (a masked value as [value, mask])."""
    match = {k: (list(v) if isinstance(v, tuple) else v)
             for k, v in (flow.get("match") or {}).items()}
    return {**flow, "match": match}
