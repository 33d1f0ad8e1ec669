"""The orchestration engine [NFVO]: (snapshot, event) -> plan. Pure: no I/O, no clock, no drivers.

    from netfate.engine import plan, Snapshot, UserAssociated
    p = plan(snapshot, UserAssociated(user="alice", node="cpe2"))
    for intent in p.intents: ...   # Place, Migrate, Release, Steer, Unsteer

The policy decides; `plan` only picks it (by object, by name, or the default "netfate").
"""

from __future__ import annotations

from netfate.engine.events import (
    EVENT_ADAPTER,
    Event,
    NodeDown,
    NodeTelemetry,
    NodeUp,
    Reconcile,
    UserAssociated,
    UserDisassociated,
    UserIdle,
)
from netfate.engine.intents import (
    INTENT_ADAPTER,
    Intent,
    Migrate,
    Place,
    Plan,
    Release,
    Steer,
    Unplaced,
    Unsteer,
)
from netfate.engine.model import CatalogueEntry, InstanceView, NodeView, Snapshot, UserView
from netfate.engine.netfate_policy import NetfatePolicy
from netfate.engine.policy import POLICIES, Policy, available, get_policy, register

DEFAULT_POLICY = "netfate"

__all__ = [
    "DEFAULT_POLICY",
    "EVENT_ADAPTER",
    "INTENT_ADAPTER",
    "POLICIES",
    "CatalogueEntry",
    "Event",
    "InstanceView",
    "Intent",
    "Migrate",
    "NetfatePolicy",
    "NodeDown",
    "NodeTelemetry",
    "NodeUp",
    "NodeView",
    "Place",
    "Plan",
    "Policy",
    "Reconcile",
    "Release",
    "Snapshot",
    "Steer",
    "Unplaced",
    "Unsteer",
    "UserAssociated",
    "UserDisassociated",
    "UserIdle",
    "UserView",
    "available",
    "get_policy",
    "plan",
    "register",
]


def plan(snapshot: Snapshot, event: Event, policy: Policy | str | None = None) -> Plan:
    """What to do about `event` given `snapshot`, according to `policy` (default "netfate")."""
    chosen = get_policy(policy or DEFAULT_POLICY) if not isinstance(policy, Policy) else policy
    return chosen.plan(snapshot, event)
