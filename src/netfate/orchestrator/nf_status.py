"""An NF instance's live status, asked of the agent that runs it: the NF's own status report
(its status script's JSON: counters such as rules, drops, alerts) and its cgroup memory.

Used by `GET /api/v1/vnf_instances/{id}/status` and the UI's NF instances view (NetFATE
Table II lists per-NF counters; the Glasgow paper's Manager shows them per NF).
"""

from __future__ import annotations

from typing import Any

from netfate.bus.messages import Command
from netfate.db import Database, repo
from netfate.db.models import Presence
from netfate.errors import Conflict, NetfateError
from netfate.orchestrator.agents import AgentBus

TIMEOUT_S = 5.0


def _where(s: Any, iid: str) -> str:
    inst = repo.get_instance(s, iid)  # NotFound (404) for an unknown id
    if inst.desired_state != Presence.PRESENT:
        raise Conflict(f"NF instance {iid} is being terminated: it has no status to show")
    return inst.node_name


async def nf_status(db: Database, bus: AgentBus, iid: str) -> dict[str, Any]:
    """``{"instance_id", "node", "state", "detail": {...}}`` from the agent of the instance's
    node, within TIMEOUT_S. NotFound for an unknown instance; Conflict (409) when it is being
    terminated, or its agent does not answer or cannot report it (the reason is named)."""
    node: str = await db.run(_where, iid)
    try:
        reply = await bus.command(node, Command(op="nf_status", instance_id=iid), TIMEOUT_S)
    except NetfateError as exc:
        raise Conflict(f"node {node} did not report NF instance {iid}: {exc}") from exc
    if not reply.ok:
        raise Conflict(f"node {node} could not report NF instance {iid}: {reply.error}")
    return {"instance_id": iid, "node": node, "state": reply.data.get("state"),
            "detail": reply.data.get("detail", {})}
