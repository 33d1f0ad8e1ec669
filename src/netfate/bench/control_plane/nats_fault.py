"""The control-plane bench on a NATS cluster (issue #15, "kill -9 one NATS member: agents and
replicas carry on through the others"): at a set second of the roaming phase, SIGKILL the
member the orchestrator is connected to (found in each member's /connz), and time how long
until the orchestrator is connected through another member.

Figures (the ``nats_fault`` object of the bench's JSON): the member killed and its PID,
``at_s`` (seconds into the roaming phase), ``orchestrator_reconnected_s`` (kill → the
orchestrator's connection seen on another member; None if not within 30 s), the simulated
agents' connections per member before and after, and ``agents_reconnected_s`` (kill → as
many agent connections on the survivors as there were in all)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from netfate.bus.cluster import NatsCluster

RECONNECT_WAIT_S = 30.0


def connections(cluster: NatsCluster, k: int) -> list[str]:
    """The client names connected to member ``k`` (its /connz); [] if it does not answer."""
    url = f"http://{cluster.host}:{cluster.members[k].monitor}/connz?limit=4096"
    try:
        data = httpx.get(url, timeout=2).raise_for_status().json()
    except (httpx.HTTPError, ValueError):
        return []
    return [str(c.get("name", "")) for c in data.get("connections") or []]


def member_of(cluster: NatsCluster, client: str, skip: int | None = None) -> int | None:
    """The member a client named ``client`` is connected to, None if none is seen."""
    for k in range(len(cluster.members)):
        if k != skip and cluster.pid(k) is not None and client in connections(cluster, k):
            return k
    return None


async def kill_orchestrators_member(cluster: NatsCluster, at_s: float,
                                   client: str = "orchestrator") -> dict[str, Any]:
    """After ``at_s`` s, SIGKILL the member of the orchestrator's connection (``client``,
    its connection name: a replica's is ``orchestrator-<id>``); the figures above."""
    await asyncio.sleep(at_s)
    k = await asyncio.to_thread(member_of, cluster, client)
    if k is None:
        return {"error": "no member has the orchestrator's connection", "at_s": at_s}
    before = await _agents_on(cluster)
    pid = await asyncio.to_thread(cluster.kill, k)
    t0 = time.monotonic()
    back: float | None = None
    agents_back: float | None = None
    while time.monotonic() - t0 < RECONNECT_WAIT_S and (back is None or agents_back is None):
        if back is None and await asyncio.to_thread(member_of, cluster, client,
                                                    k) is not None:
            back = round(time.monotonic() - t0, 3)
        if agents_back is None and sum((await _agents_on(cluster)).values()) >= sum(
                before.values()):
            agents_back = round(time.monotonic() - t0, 3)
        await asyncio.sleep(0.05)
    return {"member_killed": k, "pid": pid, "at_s": at_s,
            "orchestrator_reconnected_s": back,
            "agent_connections_before": before,
            "agent_connections_on_killed_member": before.get(k, 0),
            "agents_reconnected_s": agents_back,
            "agent_connections_after": await _agents_on(cluster)}


async def _agents_on(cluster: NatsCluster) -> dict[int, int]:
    """Simulated agents' connections per running member."""
    out = {}
    for j in range(len(cluster.members)):
        if cluster.pid(j) is not None:
            names = await asyncio.to_thread(connections, cluster, j)
            out[j] = sum(1 for n in names if n.startswith("sim-agents"))
    return out
