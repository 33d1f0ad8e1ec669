"""Desired flows vs the flows a switch reports -> what to add and what to delete. Pure.

A flow is the same flow when its table, priority and match are the same (that is how
OpenFlow itself identifies it); it is right when its cookie, instructions, idle timeout and
flags are the same too. A right flow is left alone, so a controller restart disturbs nothing:
counters, idle timers and traffic carry on. A wrong one is re-added (OFPFC_ADD with the same
match replaces it in place). Adds go before deletes, so there is never a moment with neither.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from netfate.controller.flowmod import FlowMod
from netfate.controller.oxm import canonical, canonical_match
from netfate.controller.pipeline import is_ours

Key = tuple[int, int, tuple[tuple[str, Any], ...]]


def flow_key(f: FlowMod) -> Key:
    return (f.table_id, f.priority, canonical_match(f.match))


def flow_content(f: FlowMod) -> tuple[Any, ...]:
    meta = None
    if f.write_metadata is not None:
        value, mask = f.write_metadata
        meta = (value & mask, mask)
    return (
        f.cookie,
        tuple(f.outputs),
        tuple((k, canonical(k, v)) for k, v in f.set_fields),
        meta,
        f.goto_table,
        f.idle_timeout,
        f.send_flow_removed,
        f.meter_id,
    )


@dataclass
class SyncPlan:
    add: list[FlowMod] = field(default_factory=list)      # new or wrong: install (ADD)
    delete: list[FlowMod] = field(default_factory=list)   # stale: remove (DELETE_STRICT)
    unchanged: int = 0
    foreign: list[FlowMod] = field(default_factory=list)  # not ours, left alone
    # The desired flows, one per key (the first given): the switch's once the plan is done.
    desired: list[FlowMod] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.add and not self.delete


def diff(desired: Iterable[FlowMod], installed: Iterable[FlowMod],
         purge_foreign: bool = False) -> SyncPlan:
    """What makes `installed` equal to `desired`, touching as little as possible.

    Flows without the controller's cookie mark belong to someone else (say an agent's rules
    during a migration to the controller): left alone unless purge_foreign.
    """
    plan = SyncPlan()
    have: dict[Key, FlowMod] = {}
    for f in installed:
        have[flow_key(f)] = f
    want: dict[Key, FlowMod] = {}
    for f in desired:
        want.setdefault(flow_key(f), f)
    for k, f in want.items():
        cur = have.get(k)
        if cur is not None and flow_content(cur) == flow_content(f):
            plan.unchanged += 1
        else:
            plan.add.append(f)
    for k, f in have.items():
        if k in want:
            continue
        if is_ours(f.cookie) or purge_foreign:
            plan.delete.append(f)
        else:
            plan.foreign.append(f)
    # Later tables first on the way in, so a goto never points at a table not yet ready;
    # table 0 first on the way out, so nothing new enters what is being taken down.
    plan.add.sort(key=lambda f: (-f.table_id, -f.priority))
    plan.delete.sort(key=lambda f: (f.table_id, -f.priority))
    plan.desired = list(want.values())
    return plan
