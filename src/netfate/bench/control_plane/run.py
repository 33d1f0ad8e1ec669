"""One run of the control-plane bench: set up (orchestrator, agents, users), drive the load
through its phases while metering CPU and memory, and assemble the figures."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from netfate.api_auth import BearerAuth
from netfate.bench.control_plane import replicas
from netfate.bench.control_plane.api import ERRORS, Api, OpWatch
from netfate.bench.control_plane.load import Load, Users
from netfate.bench.control_plane.meter import Meter
from netfate.bench.control_plane.nats_fault import kill_orchestrators_member
from netfate.bench.control_plane.params import (
    PASSWORD,
    PEERS,
    TARGETS,
    BenchError,
    Params,
    hash_name,
)
from netfate.bench.control_plane.procs import Procs, free_port, sigterm_as_interrupt
from netfate.bench.control_plane.report import (
    LATENCY_OBSERVED_VIA,
    per_event,
    served_at_end,
    settle_from_records,
    summarise,
)
from netfate.bench.control_plane.seed import seed_users_in_db
from netfate.bench.sim_agents import node_names
from netfate.bench.stats import summary
from netfate.bus.cluster import NatsCluster
from netfate.cluster.up import Cluster

# How long the users' state may take to converge after a fault: a new leader (a few s), its
# sweep of the dead replica's operations (every 1 s) and the repairs that follow it.
FAULT_REPAIR_S = 30.0


async def _create_users(api: Api, names: list[str], concurrency: int) -> int:
    gate = asyncio.Semaphore(concurrency)
    failed = 0

    async def one(name: str) -> None:
        nonlocal failed
        async with gate:
            status, body = await api.request("POST", "/api/v1/users", {
                "name": name, "password": PASSWORD, "required_nfs": ["firewall"]})
            if status != 201:
                failed += 1
                if failed <= 3:
                    raise BenchError(f"POST /users {name}: HTTP {status} {body}")

    await asyncio.gather(*(one(n) for n in names))
    return failed


async def _wait_nodes(api: Api, procs: Procs, ready: list[tuple[Path, Path]], n: int,
                      timeout: float) -> float:
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs.check_agents()
        if all(r.exists() for _, r in ready):
            try:
                status, body = await api.request("GET", "/api/v1/nodes", timeout=30)
                if status == 200 and sum(1 for x in body if x.get("online")) >= n:
                    return time.perf_counter() - t0
            except ERRORS:
                pass
        await asyncio.sleep(0.5)
    raise BenchError(f"not all {n} simulated nodes registered in {timeout:g}s")


async def _drive(p: Params, procs: Procs, api_port: int, nats_port: int,
                 user_names: list[str], t_setup: float,
                 cluster: NatsCluster | None, reps: Cluster | None) -> dict[str, Any]:
    if reps is not None:  # every replica's API, one operator token
        api = Api([reps.api(k) for k in range(len(reps.replicas))], p.http_conns,
                  auth=BearerAuth(token=reps.token))
    else:
        api = Api(f"http://127.0.0.1:{api_port}", p.http_conns,
                  auth=BearerAuth(state_dir=procs.state))
    try:
        return await _phases(p, procs, api, nats_port, user_names, t_setup, cluster, reps)
    finally:
        await api.close()


async def _phases(p: Params, procs: Procs, api: Api, nats_port: int, user_names: list[str],
                  t_setup: float, cluster: NatsCluster | None,
                  reps: Cluster | None) -> dict[str, Any]:
    nats_url = (reps.nats_url if reps is not None
                else procs.health.get("nats") or f"nats://127.0.0.1:{nats_port}")
    files = procs.start_agents(p, nats_url)
    register_s = await _wait_nodes(api, procs, files, p.nodes, 300)
    t_users = time.perf_counter()
    if p.users_via == "api":
        await _create_users(api, user_names, 4)
    users_s = time.perf_counter() - t_users
    started = procs.pids()
    pids = {"bench": os.getpid()}
    orchestrators = replicas.pids(reps) if reps is not None else {
        "orchestrator": started["orchestrator"]}
    pids.update(orchestrators)
    if started["nats_server"]:
        pids["nats_server"] = started["nats_server"]
    for k, pid in enumerate(started["agents"]):
        pids[f"agents{k}"] = pid
    meter = Meter(pids)
    sampler = asyncio.create_task(meter.sample())
    watch = OpWatch(api)
    followers = [asyncio.create_task(watch.follow(c)) for c in api.clients]
    poller = asyncio.create_task(watch.poll())
    await asyncio.wait_for(watch.connected.wait(), 10)
    users = Users(user_names, _cpes(p.nodes), random.Random(p.seed))
    if p.warm:
        users.at.update(_homes(p, user_names))
    load = Load(p, api, watch, users)
    load.plan_logins()
    setup_s = time.perf_counter() - t_setup
    fault: asyncio.Task[dict[str, Any]] | None = None
    try:
        # The orchestrator's own background (telemetry of every node, reconciliation) with
        # no user events, to tell the cost of the events from it.
        await asyncio.sleep(p.idle_window)  # settle: first reports of every node recorded
        meter.mark("idle")
        await asyncio.sleep(p.idle_window)
        meter.mark("start")
        if not p.warm:
            await load.phase("login", count=len(user_names), duration=None)
        await load.settle(p.op_timeout + 5)
        meter.mark("logged_in")
        # With replicas, their own NATS cluster (the member the first replica found uses).
        bus = reps.bus if reps is not None and isinstance(reps.bus, NatsCluster) else cluster
        if bus is not None and p.kill_nats_at is not None:
            fault = asyncio.create_task(kill_orchestrators_member(
                bus, p.kill_nats_at, "orchestrator" if reps is None else "orchestrator-r1"))
        elif reps is not None and p.kill_replica_at is not None:
            fault = asyncio.create_task(replicas.kill_leader(reps, p.kill_replica_at))
        await load.phase("roam", count=None, duration=p.duration)
        meter.mark("roam_sent")
        await load.settle(p.op_timeout + 5)
        meter.mark("end")
    finally:
        for t in [*load.tasks, *followers, poller, sampler]:
            t.cancel()
        await asyncio.gather(*followers, poller, sampler, return_exceptions=True)
    fault_figures = await fault if fault is not None else None
    from_records = await settle_from_records(api, load.samples)
    # After a fault, repairs of the events it cut short may still be converging.
    served = await served_at_end(api, users.at, 5.0 if fault is None else FAULT_REPAIR_S)
    login = [s for s in load.samples if s.phase == "login"]
    roam = [s for s in load.samples if s.phase == "roam"]
    overall = summarise(load.samples, p.rate)
    login_fig, roam_fig = summarise(login, p.rate), summarise(roam, p.rate)
    p99 = overall["placement_ms"].get("p99")
    return {
        "setup": {"seconds": round(setup_s, 1), "register_nodes_s": round(register_s, 1),
                  "create_users_s": round(users_s, 1), "users_via": p.users_via},
        "latency_observed_via": LATENCY_OBSERVED_VIA,
        **({"nats_fault" if p.kill_nats_at is not None else "replica_fault": fault_figures}
           if fault is not None else {}),
        **({"replicas": {"count": len(reps.replicas), "failovers": api.failovers}}
           if reps is not None else {}),
        "overall": overall,
        "served_at_end": served,
        "phases": {"login": login_fig, "roam": roam_fig},
        "completions": {"seen_on_sse": watch.by_sse, "found_by_listing": watch.by_poll,
                        "polls": watch.polls, **from_records},
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "generator_lag_ms": summary([x * 1000 for x in load.lag]),
        "sse_op_events": watch.events,
        "cpu_percent": {"login": meter.window("start", "logged_in"),
                        "roam": meter.window("logged_in", "roam_sent"),
                        "all": meter.window("start", "end")},
        "rss_max_mb": {k: meter.rss_max.get(k) for k in pids},
        # Robust to a busy machine (it is shared): the orchestrator's CPU time over the phase
        # (its telemetry handling included) per event handled. 1000 / this is the rate one
        # free core could sustain.
        "background_cpu_percent": meter.window("idle", "start"),
        # With replicas: all of them together (the cost of an event wherever it ran).
        "orchestrator_cpu_ms_per_event": {
            "login": per_event(_cpu(meter, "start", "logged_in", orchestrators),
                               login_fig["events_handled"]),
            "roam": per_event(_cpu(meter, "logged_in", "end", orchestrators),
                              roam_fig["events_handled"]),
        },
        "target_met": {
            "p99": p99 is not None and p99 <= TARGETS["p99_ms"] and overall["errors"] == 0,
            "events_per_s": roam_fig["handled_events_per_s"] >= 0.95 * TARGETS["events_per_s"],
            "size": p.nodes >= TARGETS["nodes"] and p.users >= TARGETS["users"],
        },
    }


def _cpu(meter: Meter, a: str, b: str, keys: dict[str, int]) -> float | None:
    """CPU seconds of these processes between two marks; None if one was not read (a
    replica killed meanwhile counts up to its death: its last sample)."""
    got = [meter.cpu_seconds(a, b, k) for k in keys]
    known = [x for x in got if x is not None]
    return sum(known) if known else None


def _cpes(nodes: int) -> list[str]:
    return [n for n, role in node_names(nodes) if role == "cpe"]


def _homes(p: Params, users: list[str]) -> dict[str, str]:
    cpes = _cpes(p.nodes)
    return {u: cpes[hash_name(u) % len(cpes)] for u in users}


def _running(pid: int) -> bool:
    """Alive and not a zombie (the cluster's members are this process's children)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def run(p: Params) -> dict[str, Any]:
    """Run the bench; its figures as a JSON-able dict. BenchError if it cannot set up or run.
    Everything it started is stopped by its recorded PID at the end, on failure and on
    Ctrl-C or SIGTERM too, and its temp dir is removed."""
    p.check()
    tmp = Path(tempfile.mkdtemp(prefix="fate-"))
    state = tmp / "state"
    procs = Procs(tmp, state, profile=bool(p.profile))
    api_port, nats_port = free_port(), free_port()
    user_names = [f"u{i}" for i in range(p.users)]
    result: dict[str, Any] = {}
    t0 = time.perf_counter()
    # With replicas their own NATS (one server or a cluster) comes with them.
    cluster = (NatsCluster(tmp / "nats-cluster", p.nats)
               if p.nats > 1 and p.replicas == 1 else None)
    cluster_pids: list[int | None] = []
    reps: Cluster | None = None
    try:
        with sigterm_as_interrupt():
            if cluster is not None:
                cluster.start()
                cluster_pids = [cluster.pid(k) for k in range(p.nats)]
            if p.replicas > 1:
                reps = replicas.start(p)
            if p.users_via == "db":
                seed_users_in_db(state, user_names, _homes(p, user_names) if p.warm else None,
                                 reps.db_url if reps is not None else p.db_url)
            t_setup = time.perf_counter()
            if reps is None:
                procs.start_orchestrator(api_port, nats_port, p.profile, p.db_url,
                                         p.max_in_flight,
                                         cluster.client_urls if cluster else None)
            result = asyncio.run(_drive(p, procs, api_port, nats_port, user_names, t_setup,
                                        cluster, reps))
            procs.stop_agents()
            agent_stats = []
            for k in range(len(procs.agents)):
                try:
                    agent_stats.append(json.loads((tmp / f"agents{k}.json").read_text()))
                except (OSError, ValueError):
                    pass
            result["agents"] = agent_stats
    finally:
        pids = procs.pids()
        procs.stop_all()
        if cluster is not None:
            cluster.stop()
        if reps is not None:
            reps.stop()
        left = procs.leftovers() + [x for x in cluster_pids
                                    if x is not None and _running(x)]
        keep_log = procs.orchestrator_tail() if not result else None
        shutil.rmtree(tmp, ignore_errors=True)
        if keep_log:
            sys.stderr.write(f"orchestrator log (tail):\n{keep_log}\n")
    roles = [r for _, r in node_names(p.nodes)]
    return {
        "benchmark": "control-plane",
        "params": {**asdict(p), "node_roles": {r: roles.count(r) for r in ("cpe", "pe", "dc")},
                   "cpus": os.cpu_count()},
        **result,
        "targets": TARGETS,
        "peers": PEERS,
        "processes": {**pids, "nats_cluster": cluster_pids, "left_running": left,
                      "tmp_dir": str(tmp),
                      "tmp_dir_removed": not tmp.exists()},
        "wall_s": round(time.perf_counter() - t0, 1),
    }
