"""Placement policies: the protocol they follow and the registry that finds them by name.

Built-in policies are registered here. Third-party packages add theirs through the
`netfate.policies` entry-point group (see docs/policies.md); `get_policy` loads one the first
time it is asked for, so a broken plugin only affects whoever selects it.
"""

from __future__ import annotations

from importlib import metadata
from typing import Protocol, runtime_checkable

from netfate import plugins
from netfate.engine.events import Event
from netfate.engine.intents import Plan
from netfate.engine.model import Snapshot
from netfate.engine.netfate_policy import NetfatePolicy
from netfate.errors import UnknownName

ENTRY_POINT_GROUP = "netfate.policies"


@runtime_checkable
class Policy(Protocol):
    """Plans for one event: pure, total (never raises for a valid snapshot and event)."""

    name: str

    def plan(self, snap: Snapshot, event: Event) -> Plan: ...


# The one piece of mutable module state: name -> policy.
POLICIES: dict[str, Policy] = {"netfate": NetfatePolicy()}


def register(policy: Policy, *, replace: bool = False) -> Policy:
    """Make `policy` selectable by its name. Returns it, so this works as a decorator's tail."""
    if not isinstance(policy, Policy):
        raise TypeError(f"{policy!r} is not a policy: it needs a `name` and a `plan` method")
    if policy.name in POLICIES and POLICIES[policy.name] is not policy and not replace:
        raise ValueError(f"a policy named {policy.name!r} is already registered")
    POLICIES[policy.name] = policy
    return policy


def get_policy(name: str) -> Policy:
    """The policy called `name`: registered, or found through the entry points."""
    if name in POLICIES:
        return POLICIES[name]

    def accept(obj: object) -> Policy:
        policy = _instantiate(obj)
        if policy.name != name:
            raise plugins.Refused(f"gives a policy named {policy.name!r}")
        return policy

    policy, errors = plugins.load(_entry_points(), name, accept)
    if policy is not None:
        return register(policy)
    known = ", ".join(available()) or "none"
    detail = "; ".join(errors)
    raise UnknownName(f"no policy named {name!r} (known: {known})"
                      + (f"; {detail}" if detail else ""))


def available() -> list[str]:
    """Names of every policy that can be selected, registered or not yet loaded."""
    return sorted(set(POLICIES) | {ep.name for ep in _entry_points()})


def _instantiate(obj: object) -> Policy:
    # An entry point may name a policy object, or a class/factory that builds one with defaults.
    if isinstance(obj, type) or (callable(obj) and not isinstance(obj, Policy)):
        obj = obj()
    if not isinstance(obj, Policy):
        raise TypeError(f"{obj!r} has no `name` and `plan`")
    return obj


def _entry_points() -> metadata.EntryPoints:
    return metadata.entry_points(group=ENTRY_POINT_GROUP)
