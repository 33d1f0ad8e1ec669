"""Orchestrator replicas' pure parts (issue #15): partition ownership by rendezvous hashing,
the plan locks of one process, and the settings a replica needs."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from netfate.membership import Membership, check_id, owner_of
from netfate.orchestrator.plan_locks import PlanLocks
from netfate.orchestrator.settings import Settings

NODES = [f"cpe{i}" for i in range(300)]


def test_every_key_has_one_owner_and_a_dead_members_keys_alone_move() -> None:
    three = ["r1", "r2", "r3"]
    before = {n: owner_of(n, three) for n in NODES}
    assert set(before.values()) == set(three)  # each gets a share
    shares = [sum(1 for o in before.values() if o == r) for r in three]
    assert min(shares) > len(NODES) / 6  # roughly even
    after = {n: owner_of(n, ["r1", "r3"]) for n in NODES}
    for n in NODES:
        if before[n] != "r2":
            assert after[n] == before[n]  # only r2's keys moved
        else:
            assert after[n] in ("r1", "r3")
    assert owner_of("cpe1", []) is None


def test_membership_forgets_the_silent_and_the_leaving() -> None:
    m = Membership("r1", dead_after=3.5)
    m.beat("r2", now=100.0)
    m.beat("r3", now=100.0)
    assert m.members(now=101.0) == ["r1", "r2", "r3"]
    assert m.members(now=104.0) == ["r1"]  # silent for over 3.5 s
    m.beat("r2", now=104.0)
    m.forget("r2")  # a clean stop says so
    assert m.members(now=104.1) == ["r1"]


@pytest.mark.parametrize("bad", ["", "R1", "r_1", "r1\n", "x" * 32, "-r1"])
def test_replica_ids_are_checked(bad: str) -> None:
    with pytest.raises(ValueError, match="replica_id"):
        check_id(bad, "replica_id")
    with pytest.raises(ValidationError, match="replica_id"):
        Settings(replica_id=bad, db_url="postgresql+psycopg://x@h/d", nats_url="nats://h:4222")


def test_a_replica_needs_postgresql_and_an_external_nats() -> None:
    with pytest.raises(ValidationError, match="PostgreSQL"):
        Settings(replica_id="r1", nats_url="nats://127.0.0.1:4222")
    with pytest.raises(ValidationError, match="PostgreSQL"):
        Settings(replica_id="r1", db_url="sqlite:////tmp/x.db", nats_url="nats://127.0.0.1:1")
    with pytest.raises(ValidationError, match="nats_url"):
        Settings(replica_id="r1", db_url="postgresql+psycopg://x@h/d")
    with pytest.raises(ValidationError, match="radius"):
        Settings(replica_id="r1", db_url="postgresql+psycopg://x@h/d",
                 nats_url="nats://127.0.0.1:4222", radius=True)
    ok = Settings(replica_id="r1", db_url="postgresql+psycopg://x@h/d",
                  nats_url="nats://127.0.0.1:4222")
    assert ok.replica_id == "r1"
    assert Settings().replica_id is None


def test_plan_locks_order_a_users_plans_and_hold_off_node_wide_ones() -> None:
    asyncio.run(_order())


async def _order() -> None:
    locks = PlanLocks()
    order: list[str] = []

    async def plan(name: str, user: str | None, hold: float) -> None:
        await locks.acquire(user, user is None)
        order.append(f"{name}+")
        await asyncio.sleep(hold)
        order.append(f"{name}-")
        locks.release(user, user is None)

    a = asyncio.create_task(plan("a", "u1", 0.05))
    await asyncio.sleep(0)
    b = asyncio.create_task(plan("b", "u1", 0.0))   # same user: after a
    c = asyncio.create_task(plan("c", "u2", 0.0))   # another user: alongside a
    await asyncio.sleep(0)
    d = asyncio.create_task(plan("d", None, 0.0))   # node-wide: alone
    await asyncio.gather(a, b, c, d)
    assert order.index("c+") < order.index("a-")
    assert order.index("b+") > order.index("a-")
    assert order.index("d+") > max(order.index("a-"), order.index("b-"), order.index("c-"))
    assert not locks.busy("u1")


@pytest.mark.parametrize(("kw", "match"), [
    ({"replicas": 0}, "--replicas"),
    ({"replicas": 10}, "--replicas"),
    ({"replicas": 2, "profile": "/tmp/x.prof"}, "--profile"),
    ({"replicas": 2, "nats": 3, "kill_nats_at": 1.0, "kill_replica_at": 1.0}, "one fault"),
    ({"kill_replica_at": 1.0}, "--kill-replica-at"),
    ({"replicas": 2, "kill_replica_at": 99.0, "duration": 5}, "--kill-replica-at"),
    ({"replicas": 2, "kill_replica_at": float("nan")}, "--kill-replica-at"),
])
def test_bench_replica_parameters_are_checked(kw: dict[str, object], match: str) -> None:
    from netfate.bench.control_plane.params import BenchError, Params

    with pytest.raises(BenchError, match=match):
        Params(**kw).check()  # type: ignore[arg-type]
