"""Reaction policies: the orchestrator's closed loop from an NF's notification to an action.

The Glasgow paper's IoT DDoS use case (section V.A): the packet inspector in a device's chain
detects a flood and names its source; the orchestrator reacts where the flood starts, on the
device's own edge, by adding a DROP rule for the source to the owner's firewall there (a live
update), or by placing a firewall with that rule when the owner has none.

A reaction policy is pure and total, like a placement policy (engine/policy.py): it gets the
notification and the owner's NF instances, and returns reactions, which the orchestrator's
closed loop (orchestrator/closed_loop.py) carries out as lifecycle operations. Built-in
policies are registered here; third-party packages add theirs through the
`netfate.reactions` entry-point group.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

from netfate import plugins

ENTRY_POINT_GROUP = "netfate.reactions"
MAX_FIREWALL_RULES = 256  # the firewall's own bound (catalogue/firewall)


@dataclass(frozen=True)
class Alert:
    """An NF's notification (bus.messages.Notification), as a policy sees it."""
    node: str
    type: str
    owner: str | None = None
    nf: str | None = None
    nf_id: str | None = None
    severity: str = "warning"
    source: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    ts: float = 0.0


@dataclass(frozen=True)
class NFView:
    """One of the owner's NF instances (Table II) that is wanted present."""
    instance_id: str
    nf: str
    node: str
    owner: str
    config: dict[str, Any]


@dataclass(frozen=True)
class UpdateNF:
    """Give a running NF a new config (a live update)."""
    instance_id: str
    config: dict[str, Any]
    reason: str


@dataclass(frozen=True)
class PlaceNF:
    """Place an NF for `owner` on `node` with `config`."""
    owner: str
    node: str
    nf: str
    config: dict[str, Any]
    reason: str


Reaction = UpdateNF | PlaceNF


@runtime_checkable
class ReactionPolicy(Protocol):
    """Reacts to one notification: pure, total (never raises)."""

    name: str

    def react(self, alert: Alert, nfs: list[NFView]) -> list[Reaction]: ...


def _ipv4(value: str | None) -> str | None:
    try:
        return str(ipaddress.IPv4Address(value or ""))
    except ValueError:
        return None


@dataclass
class BlockFloodSources:
    """A flood (or another of `types`) from a source inside the owner's network: a DROP rule
    for new connections from that source, first in the owner's firewall on the node that
    raised it (or any node of theirs), or a firewall placed there with the rule."""

    name: str = "block-flood-sources"
    types: tuple[str, ...] = ("flood",)
    severities: tuple[str, ...] = ("critical",)

    def react(self, alert: Alert, nfs: list[NFView]) -> list[Reaction]:
        src = _ipv4(alert.source)
        if (alert.type not in self.types or alert.severity not in self.severities
                or not alert.owner or src is None):
            return []
        rule = {"action": "deny", "direction": "out", "proto": "any", "src": f"{src}/32"}
        reason = f"{alert.type} from {src} reported by {alert.nf or 'an NF'} on {alert.node}"
        fws = sorted((n for n in nfs if n.nf == "firewall" and n.owner == alert.owner),
                     key=lambda n: (n.node != alert.node, n.instance_id))
        if not fws:
            return [PlaceNF(alert.owner, alert.node, "firewall", {"rules": [rule]}, reason)]
        fw = fws[0]
        raw = fw.config.get("rules", [])
        rules = list(raw) if isinstance(raw, list) else []
        if any(_blocks(r, src) for r in rules):
            return []  # blocked already (a repeat, or a notification queued before the update)
        if len(rules) >= MAX_FIREWALL_RULES:
            # Full: make room by dropping the oldest block rule (the last), never one of the
            # owner's own rules; none to drop: no reaction (a flood of ever new, spoofed
            # sources must not push the owner's rules out).
            blocks = [i for i, r in enumerate(rules) if _is_block(r)]
            if not blocks:
                return []
            del rules[blocks[-1]]
        cfg = {**fw.config, "rules": [rule, *rules]}
        return [UpdateNF(fw.instance_id, cfg, reason)]


def _is_block(rule: Any) -> bool:
    """A rule of the shape this policy adds: deny all out from one source."""
    return (isinstance(rule, dict) and rule.get("action") == "deny"
            and rule.get("direction", "out") == "out" and isinstance(rule.get("src"), str)
            and rule.get("proto", "any") == "any" and "dport" not in rule
            and "dst" not in rule)


def _blocks(rule: Any, src: str) -> bool:
    return _is_block(rule) and rule.get("src") in (src, f"{src}/32")


# ---- registry ------------------------------------------------------------------------------------
REACTIONS: dict[str, ReactionPolicy] = {"block-flood-sources": BlockFloodSources()}


def register(policy: ReactionPolicy, *, replace: bool = False) -> ReactionPolicy:
    """Make `policy` selectable by its name (ValueError if another has it)."""
    if not isinstance(policy, ReactionPolicy):
        raise TypeError(f"{policy!r} is not a reaction policy: it needs `name` and `react`")
    if policy.name in REACTIONS and REACTIONS[policy.name] is not policy and not replace:
        raise ValueError(f"a reaction policy named {policy.name!r} is already registered")
    REACTIONS[policy.name] = policy
    return policy


def get_reaction_policy(name: str) -> ReactionPolicy:
    """The reaction policy called `name`: registered, or found through the entry points.
    KeyError naming the known ones otherwise."""
    if name in REACTIONS:
        return REACTIONS[name]

    def accept(obj: object) -> ReactionPolicy:
        if isinstance(obj, type) or (callable(obj) and not isinstance(obj, ReactionPolicy)):
            obj = obj()
        if not isinstance(obj, ReactionPolicy):
            raise plugins.Refused("gives no `name` and `react`")
        if obj.name != name:
            raise plugins.Refused(f"gives a reaction policy named {obj.name!r}")
        return obj

    policy, errors = plugins.load(_entry_points(), name, accept)
    if policy is not None:
        return register(policy)
    known = ", ".join(available()) or "none"
    detail = "; ".join(errors)
    raise KeyError(f"no reaction policy named {name!r} (known: {known})"
                   + (f"; {detail}" if detail else ""))


def available() -> list[str]:
    return sorted(set(REACTIONS) | {ep.name for ep in _entry_points()})


def _entry_points() -> metadata.EntryPoints:
    return metadata.entry_points(group=ENTRY_POINT_GROUP)
