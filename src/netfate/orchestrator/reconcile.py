"""Periodic reconciliation: nodes that stopped reporting are marked offline, and nodes whose
actual state differs from the desired one are sent it again (level-triggered)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

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
