"""The coordinator's reads (plain rows, for speed) agree with the ORM's view, and what the
agents report is recorded in batches, a push's reply superseding an older report."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest

from netfate.db import Database, repo, sqlite_url
from netfate.db.models import ActualState, Presence
from netfate.errors import NotFound
from netfate.orchestrator.coordinator import Coordinator

from .test_snapshot_scope import NODES, USERS, _populate


@pytest.fixture
def db(tmp_path) -> Iterator[Database]:
    d = Database.create(sqlite_url(tmp_path))
    yield d
    d.dispose()


def _orm_desired(s, node: str) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """The desired state of a node as the ORM sees it (the reference)."""
    insts = [{"id": i.id, "nf_name": i.nf_name, "owner": i.owner,
              "bundle_sha256": i.bundle_sha256, "flavour": i.flavour, "config": i.config,
              "active_users": i.active_users}
             for i in repo.list_instances(s, node=node)
             if i.desired_state == Presence.PRESENT]
    rules = [{"user": r.user_name, "mac": r.mac, "ip": r.ip, "chain": r.chain}
             for r in repo.list_steering(s, node=node, desired=True)]
    return sorted(insts, key=lambda i: str(i["id"])), sorted(rules, key=lambda r: str(r["user"]))


@pytest.mark.parametrize("seed", range(4))
def test_desired_state_and_nodes_needing_push_match_the_orm(db: Database, seed: int) -> None:
    rng = random.Random(seed)
    with db.session() as s:
        _populate(s, rng)
        for u in USERS:
            for node, _ in rng.sample(NODES, 2):
                repo.set_steering(s, user=u, node=node, chain=[f"{node}-{u}-firewall"],
                                  mac="02:00:00:00:00:09", ip="10.0.0.9")
                if rng.random() < 0.5:
                    repo.mark_steering_installed(s, user=u, node=node, installed=True)
                if rng.random() < 0.3:
                    repo.clear_steering(s, user=u, node=node)
    with db.session() as s:
        for node, _ in NODES:
            d = repo.desired_state_for_node(s, node)
            assert (d["instances"], d["steering"]) == _orm_desired(s, node)
            assert d["node"] == node and len(d["revision"]) == 16
        with pytest.raises(NotFound):
            repo.desired_state_for_node(s, "nowhere")
        behind = repo.nodes_needing_push(s)
        expected = {i.node_name for i in repo.list_instances(s)
                    if i.desired_state == Presence.ABSENT
                    or i.actual_state != ActualState.RUNNING}
    assert behind == expected


def test_telemetry_reports_are_recorded_in_batches_and_replies_supersede_them(
        db: Database) -> None:
    from netfate.bus.messages import NFActual, Reply
    from netfate.orchestrator.hub import EventHub

    with db.session() as s:
        _populate(s, random.Random(5))
        rows = [(i.id, i.node_name, i.desired_state, i.nf_name, i.owner, i.bundle_sha256)
                for i in repo.list_instances(s)]
    coord = Coordinator(db, None, EventHub(), "http://x")  # type: ignore[arg-type]

    def actual(nfs: list[tuple[str, str, str, str, str]], state: str) -> list[NFActual]:
        return [NFActual(instance_id=i, nf_name=nf, owner=o, state=state, bundle_sha256=b)
                for i, _, nf, o, b in nfs]

    by_node: dict[str, list[tuple[str, str, str, str, str]]] = {}
    for iid, node, desired, nf, owner, sha in rows:
        if desired == Presence.PRESENT:
            by_node.setdefault(node, []).append((iid, node, nf, owner, sha))
    for node, nfs in by_node.items():
        coord.observe(node, actual(nfs, "running"))
    with db.session() as s:  # nothing recorded yet
        before = {i.id: i.actual_state for i in repo.list_instances(s)}
    asyncio.run(coord.record_observed())
    with db.session() as s:
        after = {i.id: (i.actual_state, i.desired_state) for i in repo.list_instances(s)}
    # Every present instance reported running is; absent ones on reporting nodes are gone.
    for iid, node, desired, *_ in rows:
        if desired == Presence.PRESENT:
            assert after[iid][0] == ActualState.RUNNING
        elif node in by_node:
            assert iid not in after
        else:
            assert after[iid][0] == before[iid]
    # A push's reply after a report wins: the older report is dropped.
    node, nfs = next(iter(by_node.items()))
    coord.observe(node, actual(nfs, "stopped"))
    asyncio.run(coord.record_actual(node, Reply(ok=True, nfs=actual(nfs, "running"))))
    asyncio.run(coord.record_observed())
    with db.session() as s:
        assert all(repo.get_instance(s, i).actual_state == ActualState.RUNNING
                   for i, *_ in nfs)
    # The same report again changes nothing and is not compared again.
    coord.observe(node, actual(nfs, "running"))
    asyncio.run(coord.record_observed())
    coord.observe(node, actual(nfs, "running"))
    assert coord.actual.pending()
    asyncio.run(coord.record_observed())
    assert not coord.actual.pending()


def test_a_direct_operation_runs_as_one_of_its_owners_plans(db: Database) -> None:
    """An operator's migration holds its owner's plan lock: the level-triggered repair (which
    skips busy users) and the owner's next plan wait, so neither takes the NF coming up on
    the destination for a duplicate and releases it (seen in the console's migration)."""
    from netfate.orchestrator.hub import EventHub

    coord = Coordinator(db, None, EventHub(), "http://x")  # type: ignore[arg-type]
    seen: list[bool] = []

    async def work() -> bool:
        seen.append(coord.busy("user2"))
        await asyncio.sleep(0)
        return True

    async def main() -> None:
        assert await coord.as_owner("user2", work())
        assert not coord.busy("user2")
        assert await coord.as_owner(None, work())  # no owner: no lock (and no hang)

    asyncio.run(main())
    assert seen == [True, False]
