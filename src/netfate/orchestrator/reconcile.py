"""Periodic reconciliation: nodes that stopped reporting are marked offline, and nodes whose
actual state differs from the desired one are sent it again (level-triggered); users whose
recorded session, steering and reported station disagree get the event that was lost
replayed (`user_repairs`, pure)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.orm import Session

from netfate.db import Database, repo
from netfate.errors import NetfateError
from netfate.orchestrator.hub import EventHub
from netfate.orchestrator.pushes import Pushes


def _read(s: Session) -> tuple[list[tuple[str, bool, float | None]], set[str]]:
    return repo.node_liveness(s), repo.nodes_needing_push(s)


async def reconcile(db: Database, pushes: Pushes, hub: EventHub, node_timeout: float,
                    now: float | None = None) -> dict[str, Any]:
    """Mark nodes silent for over `node_timeout` seconds offline; push the desired state to
    online nodes that differ from it (not to one with a push in flight: that push sends the
    current desired state). What it did: {"offline": [...], "pushed": [...]}."""
    t = now if now is not None else time.time()
    nodes, behind = await db.run(_read)
    offline, pushed = [], []
    for name, online, seen in nodes:
        if online and seen is not None and t - seen > node_timeout:
            await db.run(repo.set_node_online, name, False)
            hub.publish("node", {"name": name, "online": False})
            offline.append(name)
            continue
        if online and name in behind and not pushes.busy(name):
            with contextlib.suppress(NetfateError):  # (AgentUnreachable is one)
                await pushes.push(name)
                pushed.append(name)
    return {"offline": offline, "pushed": pushed}


# -- users, level-triggered ----------------------------------------------------------------
# An event lost while a process was down (a station associating while the bus or the
# orchestrator was down, an orchestrator killed between recording a session and running its
# plan, a chain edited while the user was logged in) leaves the recorded sessions, the desired
# steering and what the agents report disagreeing. `user_repairs` compares them and names the
# event that would have set them right; the orchestrator replays it (orchestrator/repair.py).


@dataclass(frozen=True)
class UserRecord:
    """A user as recorded: `session_node` that of their active session (None: none), `steered`
    each node with desired steering for them and its chain as NF names, `instances` their
    instances wanted present (node of each), `last_seen` unix seconds."""

    user: str
    required_nfs: tuple[str, ...]
    session_node: str | None
    mac: str | None
    ip: str | None
    access_node: str | None = None
    steered: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    instances: Mapping[str, str] = field(default_factory=dict)
    last_seen: float | None = None
    left_over: tuple[str, ...] = ()  # instances created before their last session ended


@dataclass(frozen=True)
class Repair:
    """What to replay for a user. kind "roamed": the station is at `node` but the session
    elsewhere (the association event was lost: re-authenticate there); "converge": the user
    is at `node` and their NFs or steering are not what it would give (plan the association
    again); "idle": the session's station is on no access port for the idle timeout, or there
    is no session but NFs its last session had remain (release them; NFs an operator
    placed for a user without a session are theirs to keep)."""

    kind: Literal["roamed", "converge", "idle"]
    user: str
    node: str | None
    mac: str | None = None
    why: str = ""


def user_repairs(users: Iterable[UserRecord], stations: Mapping[str, Mapping[str, str]],
                 absent_since: dict[str, float], now: float, idle_after: float
                 ) -> list[Repair]:
    """The repairs the records call for. `stations`: per CPE whose agent reported, MAC ->
    access port. `absent_since` (user -> first unix time their station was on no reported
    access port) is updated in place; after `idle_after` seconds of absence (0: never) the
    user is idle. Pure but for that dict."""
    where: dict[str, list[str]] = {}
    for node, macs in stations.items():
        for mac in macs:
            where.setdefault(mac.lower(), []).append(node)
    out: list[Repair] = []
    live: set[str] = set()
    for u in users:
        if u.session_node is None:
            if u.left_over:
                out.append(Repair("idle", u.user, u.access_node,
                                  why=f"session over, NFs left: {list(u.left_over)}"))
            continue
        live.add(u.user)
        nodes = where.get((u.mac or "").lower(), [])
        if u.mac and nodes and u.session_node not in nodes:
            absent_since.pop(u.user, None)
            out.append(Repair("roamed", u.user, nodes[0], u.mac,
                              f"station at {nodes[0]}, session at {u.session_node}"))
            continue
        if u.mac and not nodes and u.session_node in stations:
            first = absent_since.setdefault(u.user, now)
            if idle_after > 0 and now - first >= idle_after:
                out.append(Repair("idle", u.user, u.session_node, u.mac,
                                  f"station on no access port for {now - first:.0f}s"))
            continue
        absent_since.pop(u.user, None)
        chain = u.steered.get(u.session_node)
        if chain is None or set(u.steered) != {u.session_node}:
            out.append(Repair("converge", u.user, u.session_node, u.mac,
                              f"steered at {sorted(u.steered)}, session at {u.session_node}"))
        elif chain != u.required_nfs:
            out.append(Repair("converge", u.user, u.session_node, u.mac,
                              f"chain {list(chain)}, requires {list(u.required_nfs)}"))
        elif len(u.instances) != len(u.required_nfs):
            out.append(Repair("converge", u.user, u.session_node, u.mac,
                              f"{len(u.instances)} NFs wanted for {len(u.required_nfs)}"))
    for gone in set(absent_since) - live:
        del absent_since[gone]
    return out
