"""Orchestrator replicas on a real PostgreSQL and a real NATS (issue #15).

In-process: advisory locks of two sessions, plan locks across two replicas, the leader's
sweep of operations a dead replica left. Processes (`netfate.cluster.up.Cluster`): three
replicas share the simulated nodes and the API; kill -9 of the leader under load: another
leads, the dead one's nodes are taken over, no event is lost, no operation is left
unfinished or run twice, and every NF in the database is on its node."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from netfate import catalogue
from netfate.bench.control_plane.params import mac_of
from netfate.bundle import inspect_bundle
from netfate.bus.server import EmbeddedNats
from netfate.cluster.up import Cluster
from netfate.db import Database, repo
from netfate.db.advisory import AdvisoryLocks, key
from netfate.db.models import LcmOperation
from netfate.db.pg_server import LocalPostgres
from netfate.db.pg_server import bindir as pg_bindir
from netfate.orchestrator import orphans
from netfate.orchestrator.plan_locks import PlanLocks
from netfate.orchestrator.replica import Replica
from netfate.supervisor import Supervised

pytestmark = pytest.mark.root

_dbs = itertools.count(1)


@pytest.fixture(scope="module")
def pg() -> Iterator[LocalPostgres]:
    if os.geteuid() != 0:
        pytest.skip("needs root: PostgreSQL runs as the 'postgres' OS user")
    if pg_bindir() is None:
        pytest.skip("PostgreSQL is not installed: apt-get install postgresql")
    server = LocalPostgres.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def db_url(pg: LocalPostgres) -> Iterator[str]:
    name = f"fate_replicas_{next(_dbs)}"
    url = pg.create_database(name)
    try:
        yield url
    finally:
        pg.drop_database(name)


# --- in process ---------------------------------------------------------------------------


def test_advisory_locks_conflict_across_sessions_and_die_with_them(db_url: str) -> None:
    async def main() -> None:
        a = await AdvisoryLocks.connect(db_url)
        b = await AdvisoryLocks.connect(db_url)
        k = key("test:x")
        try:
            assert await a.try_lock(k)
            assert await a.try_lock(k)  # re-entrant in its session
            assert not await b.try_lock(k)
            assert not await b.try_lock(k, shared=True)
            await a.unlock(k)
            assert not await b.try_lock(k)  # still held once
            await a.unlock(k)
            assert await b.try_lock(k, shared=True)
            assert await a.try_lock(k, shared=True)  # shared holders share
            assert not await a.try_lock(key("test:x"))  # but exclude an exclusive one
            await a.unlock(k, shared=True)
            await a.close()  # a dead session's locks are gone...
            await b.unlock(k, shared=True)
            c = await AdvisoryLocks.connect(db_url)
            assert await c.try_lock(k)
            await c.close()
        finally:
            for s in (a, b):
                with contextlib.suppress(Exception):
                    await s.close()

    asyncio.run(main())


def test_a_users_plans_are_one_at_a_time_across_replicas(db_url: str) -> None:
    async def main() -> None:
        r1 = PlanLocks(await AdvisoryLocks.connect(db_url))
        r2 = PlanLocks(await AdvisoryLocks.connect(db_url))
        order: list[str] = []

        async def plan(locks: PlanLocks, name: str, user: str | None, hold: float) -> None:
            await locks.acquire(user, user is None)
            order.append(f"{name}+")
            await asyncio.sleep(hold)
            order.append(f"{name}-")
            locks.release(user, user is None)

        try:
            a = asyncio.create_task(plan(r1, "a", "u1", 0.3))
            await asyncio.sleep(0.05)
            b = asyncio.create_task(plan(r2, "b", "u1", 0.0))  # same user, other replica
            c = asyncio.create_task(plan(r2, "c", "u2", 0.0))  # other user: at once
            await asyncio.sleep(0.05)
            d = asyncio.create_task(plan(r2, "d", None, 0.0))  # node-wide: alone
            await asyncio.gather(a, b, c, d)
            assert order.index("c+") < order.index("a-")
            assert order.index("b+") > order.index("a-")
            assert order.index("d+") > order.index("a-")
        finally:
            for r in (r1, r2):
                await r.settle()
                assert r.shared is not None
                await r.shared.close()

    asyncio.run(main())


def _world(url: str) -> Database:
    d = Database.create(url)
    data = catalogue.bundle_bytes("firewall")
    desc, _ = inspect_bundle(data)
    with d.session() as s:
        sha = repo.add_bundle(s, data, name=desc.name, version=desc.version,
                              descriptor=desc.model_dump(mode="json", by_alias=True)).sha256
        repo.upsert_node(s, "cpe1", role="cpe")
        for u in ("user1", "user2"):
            repo.create_user(s, u, "secret1")
            repo.upsert_instance(s, node="cpe1", owner=u, nf_name="firewall",
                                 bundle_sha256=sha, flavour="native")
    return d


def test_the_leader_ends_only_operations_no_live_replica_runs(db_url: str) -> None:
    db = _world(db_url)

    async def main() -> None:
        with db.session() as s:
            def op(user: str, runner: str | None) -> str:
                return repo.new_op_occ(s, LcmOperation.INSTANTIATE, f"cpe1-{user}-firewall",
                                       {"runner": runner} if runner else {}).id
            live, dead, legacy, mine = (op("user1", "r2-live"), op("user2", "r3-dead"),
                                        op("user1", None), op("user2", "r1-me"))
        r2 = await AdvisoryLocks.connect(db_url)  # a live replica holds its incarnation
        assert await r2.try_lock(orphans.incarnation_key("r2-live"))
        leader = await AdvisoryLocks.connect(db_url)
        try:
            # r3 died (no session holds its incarnation); the legacy one had no replica.
            assert sorted(await orphans.sweep(db, leader, "r1-me")) == sorted([dead, legacy])
            assert await orphans.sweep(db, leader, "r1-me") == []
            await r2.close()  # r2 dies too (kill -9 closes its session)
            # Its lock goes when the server has ended the session, a moment after the close
            # (a sweep right after it found nothing once, in CI on a loaded machine).
            swept: list[str] = []
            for _ in range(50):
                swept = await orphans.sweep(db, leader, "r1-me")
                if swept:
                    break
                await asyncio.sleep(0.1)
            assert swept == [live]
            with db.session() as s:
                occ = repo.get_op_occ(s, live)
                assert occ.operation_state.value == "ROLLED_BACK"
                assert "replica" in (occ.error or {}).get("detail", "")
                assert repo.get_op_occ(s, mine).operation_state.value == "PROCESSING"
        finally:
            await leader.close()

    try:
        asyncio.run(main())
    finally:
        db.dispose()


def test_a_dead_replicas_troubleshooting_question_is_ended_and_its_probes_go(
        db_url: str) -> None:
    from netfate.orchestrator.troubleshoot_db import ensure_operator, get_occ, save_occ

    db = _world(db_url)
    with db.session() as s:
        ensure_operator(s)
        sha = repo.list_instances(s)[0].bundle_sha256
        probe = repo.upsert_instance(s, node="cpe1", owner="operator", nf_name="firewall",
                                     bundle_sha256=sha, flavour="native").id
        repo.put_ts_rules(s, "cpe1", [{"rule_id": f"troubleshoot:{probe}:out",
                                       "match": {"in_port": "w"}, "output": ["up"]}])
        save_occ(s, {"id": "q1", "operation_state": "PROCESSING", "start_time": 1.0,
                     "end_time": None, "steps": []})

    async def main() -> None:
        asking = await AdvisoryLocks.connect(db_url)  # the replica running the question
        assert await asking.try_lock(orphans.TS_KEY)
        leader = await AdvisoryLocks.connect(db_url)
        try:
            assert not await orphans.sweep_troubleshooting(db, leader, lambda: False)
            assert not await orphans.sweep_troubleshooting(db, leader, lambda: True)
            await asking.close()  # it dies
            assert not await orphans.sweep_troubleshooting(db, leader, lambda: True)
            assert await orphans.sweep_troubleshooting(db, leader, lambda: False)
            assert not await orphans.sweep_troubleshooting(db, leader, lambda: False)
        finally:
            await leader.close()

    try:
        asyncio.run(main())
        with db.session() as s:
            q = get_occ(s, "q1")
            assert q is not None and q["operation_state"] == "FAILED"
            assert repo.get_instance(s, probe).desired_state.value == "absent"
            assert repo.list_ts_rules(s, "cpe1") == []
    finally:
        db.dispose()


def test_one_replica_leads_and_another_takes_over_when_its_session_dies(
        db_url: str, tmp_path: Path) -> None:
    bus = EmbeddedNats(tmp_path / "nats")
    bus.start()

    async def main() -> None:
        import nats

        lost: list[str] = []
        reps = []
        for rid in ("r1", "r2"):
            nc = await nats.connect(bus.url)
            reps.append(Replica(rid, nc, await AdvisoryLocks.connect(db_url),
                                on_lost=lambda rid=rid: lost.append(rid)))
        try:
            for r in reps:
                await r.start()
            twin = Replica("r1", reps[0].nc, await AdvisoryLocks.connect(db_url))
            with pytest.raises(Exception, match="already running"):
                await twin.start()
            await twin.locks.close()
            await _until(lambda: sum(r.leader for r in reps) == 1
                         and all(len(r.members()) == 2 for r in reps), 5)
            nodes = [f"cpe{i}" for i in range(50)]
            assert all(sum(r.owns(n) for r in reps) == 1 for n in nodes)
            first = next(r for r in reps if r.leader)
            second = next(r for r in reps if not r.leader)
            assert second.current_leader() == first.id
            t0 = time.monotonic()
            await first.locks.close()  # as a kill -9 would: the session ends
            await _until(lambda: second.leader, 5)
            print(f"\nleader taken over in {(time.monotonic() - t0) * 1000:.0f} ms")
            await _until(lambda: first.id in lost, 5)  # the old one knows it lost and stops
            first._tasks[0].cancel()
            await _until(lambda: second.members() == [second.id], 6)
            assert all(second.owns(n) for n in nodes)
        finally:
            for r in reps:
                await r.stop()
                await r.nc.close()

    try:
        asyncio.run(main())
    finally:
        bus.stop()


async def _until(cond: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.05)


# --- processes: three replicas, simulated nodes, kill -9 of the leader -----------------------

NODES = 8  # 1 DC, 7 CPEs (bench.sim_agents.node_names)
USERS = [f"u{i}" for i in range(1, 13)]


@pytest.fixture(scope="module")
def cluster(pg: LocalPostgres, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[Cluster, Supervised]]:
    c = Cluster(replicas=3, nats=1, controllers=0, db_url=pg.create_database("cluster"))
    agents: Supervised | None = None
    try:
        c.start()
        tmp = tmp_path_factory.mktemp("sim")
        agents = Supervised("sim-agents", [
            sys.executable, "-m", "netfate.bench.sim_agents", "--nats", c.nats_url,
            # Agents that take 300 ms to apply: a kill lands with operations in flight.
            "--nodes", str(NODES), "--telemetry-interval", "1", "--apply-delay-ms", "300",
            "--stats",
            str(tmp / "stats.json"), "--ready", str(tmp / "ready")], tmp,
            programs=("python",))
        agents.start(lambda: (tmp / "ready").exists(), timeout=30)
        _wait_for(lambda: _online(c) >= NODES, 30, "every simulated node registered")
        for u in USERS:
            r = _api(c, 0, "POST", "/api/v1/users",
                     {"name": u, "password": "pw-123456", "required_nfs": ["firewall"]})
            assert r.status_code == 201, r.text
        yield c, agents
    finally:
        if agents is not None:
            agents.stop()
        c.stop()


def _api(c: Cluster, k: int, method: str, path: str, body: Any = None,
         timeout: float = 20.0) -> httpx.Response:
    return httpx.request(method, c.api(k) + path, json=body, timeout=timeout,
                         headers={"Authorization": f"Bearer {c.token}"})


def _online(c: Cluster) -> int:
    with contextlib.suppress(httpx.HTTPError):
        return sum(1 for n in _api(c, 0, "GET", "/api/v1/nodes").json() if n["online"])
    return 0


def _wait_for(cond: Any, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.1)
    return time.monotonic() - t0


def _views(c: Cluster, alive: list[int]) -> list[dict[str, Any]]:
    out = []
    for k in alive:
        with contextlib.suppress(httpx.HTTPError):
            out.append(_api(c, k, "GET", "/api/v1/cluster", timeout=3).json())
    return out


def test_replicas_share_the_nodes_and_one_leads(cluster: tuple[Cluster, Supervised]) -> None:
    c, _ = cluster
    _wait_for(lambda: all(len(v["members"]) == 3 for v in _views(c, [0, 1, 2])), 10,
              "every replica sees three")
    views = _views(c, [0, 1, 2])
    assert {v["leader"] for v in views} == {next(v["replica"] for v in views
                                                 if v["is_leader"])}
    assert sum(v["is_leader"] for v in views) == 1


def test_kill_9_of_the_leader_under_load_loses_no_event(
        cluster: tuple[Cluster, Supervised]) -> None:
    c, _ = cluster
    views = _views(c, [0, 1, 2])
    leader = next(k for k, v in enumerate(views) if v["is_leader"])
    survivors = [k for k in range(3) if k != leader]
    cpes = [f"cpe{i}" for i in range(1, NODES)]
    accepted: dict[str, str] = {}  # op id -> user
    at: dict[str, str] = {}
    errors: list[str] = []
    killed_at: list[float] = []

    def associate(i: int, u: str) -> None:
        node = cpes[(i + USERS.index(u)) % len(cpes)]
        # Round robin over the replicas; one that does not answer (killed) is skipped, as a
        # client behind a load balancer would be sent to another.
        for k in [*range(i % 3, 3), *range(0, i % 3)]:
            if killed_at and k == leader:
                continue
            try:
                r = _api(c, k, "POST", f"/api/v1/users/{u}/associate",
                         {"node": node, "mac": mac_of(u)})
            except httpx.TransportError:
                continue
            if r.status_code == 202:
                at[u] = node
                for op in r.json()["vnf_lcm_op_occs"]:
                    accepted[op] = u
            elif r.status_code != 429:
                errors.append(f"{u}@{node} via r{k + 1}: HTTP {r.status_code} {r.text[:200]}")
            return
        errors.append(f"{u}@{node}: no replica answered")

    seen: dict[str, float] = {}  # first time (wall clock) a survivor led / forgot it
    watching = threading.Event()

    def watch() -> None:
        while not watching.is_set():
            if killed_at:
                for v in _views(c, survivors):
                    if v["is_leader"] and v["leader_since"] and "leader" not in seen:
                        seen["leader"] = v["leader_since"]
                    if f"r{leader + 1}" not in v["members"]:
                        seen.setdefault("forgot", time.time())
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    pool = ThreadPoolExecutor(4)
    t_start = time.monotonic()
    t_end = t_start + 14
    i = 0
    while time.monotonic() < t_end:
        if not killed_at and time.monotonic() - t_start > 5:
            assert c.kill_replica(leader) is not None
            killed_at.append(time.time())
        # A third of the users at once: the kill lands with plans in flight.
        list(pool.map(lambda u, i=i: associate(i, u), USERS[i % 3::3]))
        i += 1
        time.sleep(0.05)
    pool.shutdown()
    assert killed_at, "the load ended before the kill"
    assert not errors, errors[:5]
    t_kill = killed_at[0]
    # Another replica leads, and the dead one's nodes are the survivors' (membership).
    _wait_for(lambda: "leader" in seen and "forgot" in seen, 10,
              "a new leader, and the dead replica forgotten")
    watching.set()
    watcher.join()
    # Nothing left unfinished (the leader ends what the dead one left), every accepted
    # operation ended once.
    k = survivors[0]

    def settled() -> bool:
        ops = _api(c, k, "GET", "/api/v1/vnf_lcm_op_occs").json()
        return all(o["operation_state"] not in ("PROCESSING", "ROLLING_BACK") for o in ops)

    _wait_for(settled, 30, "every operation ended")
    ops = {o["id"]: o for o in _api(c, k, "GET", "/api/v1/vnf_lcm_op_occs").json()}
    assert set(accepted) <= set(ops), "an accepted operation is not recorded"
    orphaned = [o for o in ops.values()
                if "replica running the operation stopped" in str(o.get("error"))]
    print(f"\nafter kill -9 of the leader r{leader + 1}: r"
          f"{[v['replica'] for v in _views(c, survivors) if v['is_leader']]} leads "
          f"{seen['leader'] - t_kill:.2f} s later, its nodes moved "
          f"{seen['forgot'] - t_kill:.2f} s later; {len(accepted)} operations accepted, "
          f"{len(orphaned)} left unfinished by it and ended by the new leader")
    # Every user is served where they last associated: one firewall, wanted there and
    # running there as its node's agent reports (the user repairs converge any operation
    # the killed replica cut short).

    def served() -> bool:
        inst = _api(c, k, "GET", "/api/v1/vnf_instances").json()
        for u, node in at.items():
            mine = [x for x in inst if x["owner"] == u and x["desired_state"] == "present"]
            if len(mine) != 1 or mine[0]["node_name"] != node \
                    or mine[0]["actual_state"] != "running":
                return False
        return True

    _wait_for(served, 60, "every user's firewall on their node")
    c.restart_replica(leader)  # it joins again
    _wait_for(lambda: all(len(v["members"]) == 3 for v in _views(c, [0, 1, 2])), 15,
              "three replicas again")


def test_bench_against_replicas_kills_the_leader_and_loses_no_event(
        pg: LocalPostgres) -> None:
    """The CI-sized run of `netfate bench control-plane --replicas 2 --kill-replica-at S`."""
    from netfate.bench.control_plane import Params, run

    out = run(Params(nodes=6, users=30, rate=15, duration=6, users_via="db", replicas=2,
                     kill_replica_at=2, idle_window=1, db_url=pg.create_database("bench")))
    fault = out["replica_fault"]
    assert fault["leader_s"] is not None and fault["partitions_moved_s"] is not None, fault
    assert out["overall"]["errors"] == 0, out["overall"]["errors_by_kind"]
    # An event whose operation the killed leader was running is ended by the new leader
    # and its user repaired: none is lost, every user is where their last event put them.
    assert out["overall"]["events_handled"] + out["overall"]["events_cut_short"] \
        == out["overall"]["events_sent"]
    assert out["served_at_end"]["not_served"] == 0, out["served_at_end"]
    assert out["replicas"]["count"] == 2
    assert out["processes"]["left_running"] == [] and out["processes"]["tmp_dir_removed"]
    print(f"\nbench: leader replaced in {fault['leader_s']} s, partitions moved in "
          f"{fault['partitions_moved_s']} s, {out['replicas']['failovers']} requests "
          f"failed over, {out['overall']['events_cut_short']} events cut short and their "
          f"users repaired; CPU ms/event {out['orchestrator_cpu_ms_per_event']}")
