"""The orchestrator's scoped snapshot (what a user or node event touches) gives the default
policy the same plan as the whole world, on random NFVI databases (seeded, stdlib only)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from netfate.db import Database, repo, sqlite_url
from netfate.db.models import ActualState, Presence, User
from netfate.engine import (
    NetfatePolicy,
    NodeDown,
    NodeTelemetry,
    NodeUp,
    Reconcile,
    UserAssociated,
    UserDisassociated,
    UserIdle,
    plan,
)
from netfate.engine.events import Event
from netfate.orchestrator import snapshot

NODES = [("cpe1", "cpe"), ("cpe2", "cpe"), ("cpe3", "cpe"), ("cpe4", "cpe"), ("pe1", "pe"),
         ("dc1", "dc"), ("dc2", "dc")]
CAPS = ["nftables", "conntrack", "tc", "python3"]
NFS = {"firewall": (["nftables", "conntrack"], 16), "shaper": (["tc"], 64),
       "ids": (["nftables", "python3"], 300)}
USERS = [f"user{i}" for i in range(8)]
NOW = 1_700_000_000.0


@pytest.fixture
def db(tmp_path) -> Iterator[Database]:
    d = Database.create(sqlite_url(tmp_path))
    yield d
    d.dispose()


def _populate(s: Session, rng: random.Random, shared: bool = False) -> None:
    """`shared`: the shaper is a shared NF (NNF IV.E), its instances used by random users."""
    for name, role in NODES:
        total = {"cpe": 512, "pe": 1024, "dc": 4096}[role]
        repo.upsert_node(
            s, name, role=role, online=rng.random() < 0.85,
            capabilities=[c for c in CAPS if rng.random() < 0.8], infrastructure={},
            resources={"mem_total_mb": total, "mem_free_mb": rng.randint(0, total),
                       "cpu_util": rng.choice([0.1, 0.5, 0.79, 0.85]),
                       "nf_count": rng.randint(0, 5)})
    shas = {}
    for nf, (caps, mem) in NFS.items():
        b = repo.add_bundle(s, f"bundle {nf}".encode(), name=nf, version="1", descriptor={
            "name": nf, "dependencies": {"capability": [{"name": c} for c in caps]},
            "resources": {"memory-mb": mem}, "shared": shared and nf == "shaper"})
        shas[nf] = b.sha256
    cpes = [n for n, r in NODES if r != "dc"]
    for u in USERS:
        s.add(User(name=u, password_hash="x", created_at=NOW,
                   required_nfs=rng.sample([*NFS, "ghost"], rng.randint(0, 3))))
        s.flush()
        if rng.random() < 0.8:
            repo.add_session(s, user=u, node=rng.choice(cpes), mac="02:00:00:00:00:01",
                             now=NOW - 10)
            if rng.random() < 0.2:
                cur = repo.active_session(s, u)
                assert cur is not None
                repo.end_session(s, cur.id)
        for nf in rng.sample(list(NFS), rng.randint(0, 3)):
            for node in rng.sample([n for n, _ in NODES], rng.randint(1, 2)):
                inst = repo.upsert_instance(
                    s, node=node, owner=u, nf_name=nf, bundle_sha256=shas[nf],
                    flavour="native",
                    desired_state=(Presence.PRESENT if rng.random() < 0.85
                                   else Presence.ABSENT))
                if shared and nf == "shaper":
                    repo.set_instance_active_users(s, inst.id, rng.sample(USERS, 3))
                repo.set_instance_actual_state(s, inst.id, rng.choice(
                    [ActualState.RUNNING, ActualState.RUNNING, ActualState.PENDING,
                     ActualState.FAILED]))


def _events(rng: random.Random) -> list[Event]:
    names = [n for n, _ in NODES] + ["nowhere"]
    out: list[Event] = []
    for u in [*USERS, "nobody"]:
        out.append(UserAssociated(user=u, node=rng.choice(names), mac="02:00:00:00:00:02"))
        out.append(UserDisassociated(user=u, node=rng.choice(names)))
        out.append(UserIdle(user=u))
    for n in names:
        out.append(NodeTelemetry(node=n, cpu_util=rng.choice([0.05, 0.5, 0.95]),
                                 mem_free_mb=rng.randint(0, 600), nf_count=rng.randint(0, 4)))
        out.append(NodeUp(node=n))
        out.append(NodeDown(node=n))
    return out


@pytest.mark.parametrize(("seed", "shared"), [*((k, False) for k in range(12)),
                                             *((k, True) for k in range(6))])
def test_scoped_snapshot_plans_like_the_whole_world(db: Database, seed: int,
                                                    shared: bool) -> None:
    rng = random.Random(seed)
    with db.session() as s:
        _populate(s, rng, shared)
    policy = NetfatePolicy()
    assert snapshot.scoped(policy)
    with db.session() as s:
        whole = snapshot.build(s, now=NOW)
        for ev in _events(rng):
            part = snapshot.build_for(s, ev, now=NOW)
            # A part of the world, as the whole one records it.
            assert set(part.nodes) <= set(whole.nodes)
            assert set(part.users) <= set(whole.users)
            assert set(part.instances) <= set(whole.instances)
            assert part.catalogue == whole.catalogue
            assert {n.name for n in part.dc_nodes()} == {n.name for n in whole.dc_nodes()}
            assert plan(part, ev, policy) == plan(whole, ev, policy), ev


def test_reconcile_and_unscoped_policies_get_the_whole_world(db: Database) -> None:
    with db.session() as s:
        _populate(s, random.Random(99))
    with db.session() as s:
        assert snapshot.build_for(s, Reconcile(), now=NOW) == snapshot.build(s, now=NOW)

    class Plain:
        name = "plain"

    assert not snapshot.scoped(Plain())


def test_whole_snapshot_matches_the_repository(db: Database) -> None:
    """build() reads sessions in one query; it still says who is active like the repo does."""
    with db.session() as s:
        _populate(s, random.Random(7))
    with db.session() as s:
        whole = snapshot.build(s, now=NOW)
        for u in repo.list_users(s):
            view = whole.user(u.name)
            assert view is not None
            assert view.session_active == (repo.active_session(s, u.name) is not None)
        present = {i.id for i in repo.list_instances(s) if i.desired_state == Presence.PRESENT}
        assert {i.instance_id for i in whole.instances} == present
