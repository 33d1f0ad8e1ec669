"""The control-plane bench against orchestrator replicas (issue #15, `--replicas N`): the
scale-out control plane of `netfate.cluster.up` (PostgreSQL, NATS, N replicas) instead of one
orchestrator; the load goes round robin to every replica's API.

With ``--kill-replica-at S``: S seconds into the roaming phase, SIGKILL the leader, and time
how long until a survivor leads (``leader_s``: kill → a survivor's ``leader_since``) and until
every survivor has dropped it from its membership (``partitions_moved_s``: its nodes' agents'
messages are then the survivors'). Events sent to it meanwhile go to another replica."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx

from netfate.bench.control_plane.params import BenchError, Params
from netfate.cluster.up import Cluster
from netfate.errors import NetfateError

FAULT_WAIT_S = 30.0


def start(p: Params) -> Cluster:
    """Start the replicas (and their PostgreSQL unless --db-url, their NATS); BenchError if
    any part does not start (nothing is left running then)."""
    env = ({"NETFATE_MAX_EVENTS_IN_FLIGHT": str(p.max_in_flight)}
           if p.max_in_flight is not None else {})
    c = Cluster(replicas=p.replicas, nats=p.nats, controllers=0, db_url=p.db_url, env=env)
    try:
        c.start()
    except NetfateError as exc:
        raise BenchError(f"the replicas did not start: {exc}") from exc
    return c


def pids(c: Cluster) -> dict[str, int]:
    return {f"orchestrator-r{k + 1}": pid for k in range(len(c.replicas))
            if (pid := c.replica_pid(k)) is not None}


def _view(c: Cluster, k: int) -> dict[str, Any] | None:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        r = httpx.get(f"{c.api(k)}/api/v1/cluster", timeout=2,
                      headers={"Authorization": f"Bearer {c.token}"})
        if r.status_code == 200:
            return dict(r.json())
    return None


async def kill_leader(c: Cluster, at_s: float) -> dict[str, Any]:
    """After ``at_s`` s, SIGKILL the leading replica; the figures above."""
    await asyncio.sleep(at_s)
    views = [await asyncio.to_thread(_view, c, k) for k in range(len(c.replicas))]
    leader = next((k for k, v in enumerate(views) if v and v.get("is_leader")), None)
    if leader is None:
        return {"error": "no replica says it leads", "at_s": at_s}
    pid = await asyncio.to_thread(c.kill_replica, leader)
    t_kill = time.time()
    name = f"r{leader + 1}"
    survivors = [k for k in range(len(c.replicas)) if k != leader]
    new_leader: str | None = None
    leader_s = moved_s = None
    while time.time() - t_kill < FAULT_WAIT_S and (leader_s is None or moved_s is None):
        vs = [v for k in survivors if (v := await asyncio.to_thread(_view, c, k))]
        for v in vs:
            if v.get("is_leader") and leader_s is None:
                new_leader = v["replica"]
                leader_s = round(float(v["leader_since"]) - t_kill, 3)
        if moved_s is None and vs and all(name not in v["members"] for v in vs):
            moved_s = round(time.time() - t_kill, 3)
        await asyncio.sleep(0.05)
    return {"replica_killed": name, "pid": pid, "at_s": at_s, "new_leader": new_leader,
            "leader_s": leader_s, "partitions_moved_s": moved_s}
