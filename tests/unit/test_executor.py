"""The coordinator's executor against fake agents (no bus) and a SQLite database: each
occurrence ends COMPLETED, ROLLED_BACK or FAILED, with the desired state to match, and an
agent that did not answer is not sent an undo."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from netfate import catalogue
from netfate.bundle import inspect_bundle
from netfate.bus.messages import Command, NFActual, Reply
from netfate.db import Database, repo, sqlite_url
from netfate.db.models import LcmOperation, Presence
from netfate.errors import Conflict
from netfate.orchestrator import planner
from netfate.orchestrator.agents import AgentUnreachable
from netfate.orchestrator.checkpoints import Checkpoints
from netfate.orchestrator.coordinator import Coordinator
from netfate.orchestrator.hub import EventHub

Agent = Callable[[Command, list[str]], Reply]


class FakeBus:
    """Each node's agent: runs what it is sent (all instances up) unless told otherwise."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.agents: dict[str, Agent] = {}

    async def command(self, node: str, cmd: Command, timeout: float | None = None) -> Reply:
        self.sent.append((node, cmd.op))
        agent = self.agents.get(node, converge)
        return agent(cmd, [node])


def converge(cmd: Command, _: list[str]) -> Reply:
    if cmd.op == "apply" and cmd.desired is not None:
        return Reply(ok=True, nfs=[NFActual(instance_id=i.instance_id, nf_name=i.nf_name,
                                            owner=i.owner, state="running",
                                            bundle_sha256=i.bundle_sha256)
                                   for i in cmd.desired.instances])
    return Reply(ok=True, data={"ruleset": "x"})


def silent(node: str) -> Agent:
    def agent(cmd: Command, _: list[str]) -> Reply:
        raise AgentUnreachable(node, f"the agent of node {node} did not answer")
    return agent


@pytest.fixture
def db(tmp_path: Any) -> Iterator[Database]:
    d = Database.create(sqlite_url(tmp_path))
    data = catalogue.bundle_bytes("firewall")
    desc, _ = inspect_bundle(data)
    with d.session() as s:
        for n in ("cpe1", "cpe2"):
            repo.upsert_node(s, n, role="cpe")
        repo.create_user(s, "user1", "Pw-user1-long-enough")
        repo.add_bundle(s, data, name=desc.name, version=desc.version,
                        descriptor=desc.model_dump(mode="json", by_alias=True))
    yield d
    d.dispose()


def run(db: Database, bus: FakeBus, make: Callable[[str], planner.Occurrence],
        op: LcmOperation = LcmOperation.INSTANTIATE,
        checkpoints: Checkpoints | None = None) -> tuple[bool, dict[str, Any]]:
    async def go() -> tuple[bool, dict[str, Any]]:
        c = Coordinator(db, bus, EventHub(), "http://x")  # type: ignore[arg-type]
        if checkpoints is not None:
            c.executor.checkpoints = checkpoints
        op_id = await c.new_op(op, "i", {})
        ok = await c.executor.run(make(op_id))
        with db.session() as s:
            occ = repo.get_op_occ(s, op_id)
            return ok, {"state": occ.operation_state.value, "error": occ.error,
                        "params": occ.params}
    return asyncio.run(go())


def desired(db: Database, iid: str) -> Presence | None:
    with db.session() as s:
        found = [i.desired_state for i in repo.list_instances(s) if i.id == iid]
    return found[0] if found else None


def test_an_nf_that_comes_up_completes(db: Database) -> None:
    bus = FakeBus()
    ok, occ = run(db, bus, lambda op: planner.instantiate(op, "cpe1", "user1", "firewall",
                                                          "i1"))
    assert ok and occ["state"] == "COMPLETED"
    assert desired(db, "i1") == Presence.PRESENT and bus.sent == [("cpe1", "apply")]


def test_an_nf_that_does_not_come_up_is_rolled_back_and_undone(db: Database) -> None:
    bus = FakeBus()
    bus.agents["cpe1"] = lambda cmd, _: Reply(ok=False, error="no namespace")
    ok, occ = run(db, bus, lambda op: planner.instantiate(op, "cpe1", "user1", "firewall",
                                                          "i1"))
    assert not ok and occ["state"] == "ROLLED_BACK" and "no namespace" in occ["error"]["detail"]
    assert desired(db, "i1") is None  # absent, and gone once the agent reported without it
    assert bus.sent == [("cpe1", "apply"), ("cpe1", "apply")]  # the undo was pushed


def test_a_silent_agent_is_not_sent_an_undo(db: Database) -> None:
    bus = FakeBus()
    bus.agents["cpe1"] = silent("cpe1")
    ok, occ = run(db, bus, lambda op: planner.instantiate(op, "cpe1", "user1", "firewall",
                                                          "i1"))
    assert not ok and occ["state"] == "ROLLED_BACK"
    assert bus.sent == [("cpe1", "apply")]
    assert desired(db, "i1") == Presence.ABSENT


def _placed(db: Database) -> planner.InstanceFacts:
    with db.session() as s:
        sha = repo.list_bundles(s, name="firewall")[0].sha256
        repo.upsert_instance(s, node="cpe1", owner="user1", nf_name="firewall",
                             bundle_sha256=sha, flavour="native", instance_id="i1")
    return planner.InstanceFacts(node="cpe1", owner="user1", nf="firewall",
                                 exportable=True)


def _shared(db: Database) -> None:
    """The firewall's package marked shared (descriptor `shared`): one instance for several
    users, each steered through it (a user is never steered through another's NF that is
    not: lcm_records.steer refuses it)."""
    from netfate.db.models import VnfPackage

    with db.session() as s:
        pkg = s.scalars(sa.select(VnfPackage).where(VnfPackage.name == "firewall")).one()
        pkg.descriptor = {**pkg.descriptor, "shared": True}


def test_user2_is_not_steered_through_user1s_nf_that_is_not_shared(db: Database) -> None:
    from netfate.orchestrator import lcm_records as rec

    _placed(db)
    with db.session() as s:
        repo.create_user(s, "user2", "Pw-user2-long-enough")
    with db.session() as s, pytest.raises(Conflict, match="'user2' is not steered"):
        rec.steer(s, "user2", "cpe1", ["i1"], None, None)
    with db.session() as s:
        assert repo.get_instance(s, "i1").active_users == []
        assert not repo.list_steering(s, node="cpe1")


def test_a_migration_moves_the_state_then_releases_the_source(db: Database) -> None:
    facts, bus = _placed(db), FakeBus()
    ok, occ = run(db, bus, lambda op: planner.migrate(op, "i1", facts, "cpe2", "i2"),
                  LcmOperation.MIGRATE)
    assert ok and occ["state"] == "COMPLETED"
    assert bus.sent == [("cpe2", "apply"), ("cpe1", "export_state"), ("cpe2", "import_state"),
                        ("cpe1", "apply")]
    assert set(occ["params"]["timings"]) == {"instantiate_ms", "export_ms", "import_ms"}
    assert desired(db, "i2") == Presence.PRESENT
    assert desired(db, "i1") is None  # released, and gone from the agent's report


def test_a_failed_import_leaves_the_source_serving(db: Database) -> None:
    facts, bus = _placed(db), FakeBus()

    def refuses_import(cmd: Command, nodes: list[str]) -> Reply:
        if cmd.op == "import_state":
            return Reply(ok=False, error="bad state")
        return converge(cmd, nodes)

    bus.agents["cpe2"] = refuses_import
    ok, occ = run(db, bus, lambda op: planner.migrate(op, "i1", facts, "cpe2", "i2"),
                  LcmOperation.MIGRATE)
    assert not ok and occ["state"] == "ROLLED_BACK" and "bad state" in occ["error"]["detail"]
    assert desired(db, "i1") == Presence.PRESENT
    assert desired(db, "i2") in (Presence.ABSENT, None)
    assert ("cpe1", "apply") not in bus.sent  # the source was never touched


def test_a_migration_keeps_the_exported_state_as_both_instances_checkpoint(db: Database
                                                                            ) -> None:
    facts, bus, cps = _placed(db), FakeBus(), Checkpoints()
    ok, _ = run(db, bus, lambda op: planner.migrate(op, "i1", facts, "cpe2", "i2"),
                LcmOperation.MIGRATE, cps)
    assert ok
    for iid in ("i1", "i2"):
        cp = cps.get(iid)
        assert cp is not None and cp.state == {"ruleset": "x"}


def _failover(db: Database, bus: FakeBus, cps: Checkpoints) -> tuple[bool, dict[str, Any]]:
    from dataclasses import replace

    facts = replace(_placed(db), node_online=False)
    bus.agents["cpe1"] = silent("cpe1")
    return run(db, bus, lambda op: planner.migrate(op, "i1", facts, "cpe2", "i2"),
               LcmOperation.MIGRATE, cps)


def test_a_failover_imports_the_last_checkpoint_into_the_replacement(db: Database) -> None:
    bus, cps = FakeBus(), Checkpoints()
    cps.put("i1", {"ruleset": "old"}, at=1.0)
    cps.put("i1", {"ruleset": "older"}, at=0.5)  # an older document never wins
    imported: list[dict[str, Any] | None] = []

    def dst(cmd: Command, nodes: list[str]) -> Reply:
        if cmd.op == "import_state":
            imported.append(cmd.state)
        return converge(cmd, nodes)

    bus.agents["cpe2"] = dst
    ok, occ = _failover(db, bus, cps)
    assert ok and occ["state"] == "COMPLETED"
    assert imported == [{"ruleset": "old"}]
    assert ("cpe1", "export_state") not in bus.sent  # nothing asked of the dead node
    assert "restore_ms" in occ["params"]["timings"]
    assert desired(db, "i2") == Presence.PRESENT and desired(db, "i1") == Presence.ABSENT
    cp = cps.get("i2")
    assert cp is not None and cp.at == 1.0


def test_a_failover_without_a_checkpoint_or_with_a_refused_one_starts_afresh(db: Database
                                                                             ) -> None:
    bus = FakeBus()
    ok, occ = _failover(db, bus, Checkpoints())
    assert ok and occ["state"] == "COMPLETED"
    assert ("cpe2", "import_state") not in bus.sent


def test_a_refused_checkpoint_still_serves_the_user(db: Database) -> None:
    bus, cps = FakeBus(), Checkpoints()
    cps.put("i1", {"ruleset": "bad"})

    def refuses(cmd: Command, nodes: list[str]) -> Reply:
        if cmd.op == "import_state":
            return Reply(ok=False, error="bad state")
        return converge(cmd, nodes)

    bus.agents["cpe2"] = refuses
    ok, occ = _failover(db, bus, cps)
    assert ok and occ["state"] == "COMPLETED" and desired(db, "i2") == Presence.PRESENT


def test_a_checkpoint_pass_exports_running_exportable_nfs_on_online_nodes(db: Database
                                                                          ) -> None:
    from netfate.db.models import ActualState

    _placed(db)
    with db.session() as s:
        for n in ("cpe1", "cpe2"):
            repo.set_node_online(s, n, True)
        repo.get_instance(s, "i1").actual_state = ActualState.RUNNING
    bus, cps = FakeBus(), Checkpoints()
    bus.agents["cpe1"] = batch_agent({"i1": {"ruleset": "x"}})
    cps.put("gone", {"x": 1})
    assert asyncio.run(cps.take(db, bus)) == ["i1"]  # type: ignore[arg-type]
    assert bus.sent == [("cpe1", "export_states")]
    got = cps.get("i1")
    assert got is not None and got.state == {"ruleset": "x"}
    assert cps.get("gone") is None  # no longer wanted: forgotten
    bus.agents["cpe1"] = silent("cpe1")
    assert asyncio.run(cps.take(db, bus)) == []  # type: ignore[arg-type]
    assert cps.get("i1") is not None  # the previous one is kept


def test_a_node_silent_past_the_grace_period_is_a_node_down_for_the_engine(db: Database
                                                                           ) -> None:
    from netfate.engine import Event, NodeDown

    with db.session() as s:
        repo.set_node_online(s, "cpe1", True, now=100.0)
        repo.set_node_online(s, "cpe2", True, now=1000.0)
    planned: list[Event] = []

    async def go() -> dict[str, Any]:
        c = Coordinator(db, FakeBus(), EventHub(), "http://x")  # type: ignore[arg-type]

        async def handle(event: Event, background: bool = True, record: Any = None) -> Any:
            planned.append(event)

        c.handle = handle  # type: ignore[method-assign]
        done = await c.reconcile(10.0, now=1005.0)
        await c.drain()
        return done

    done = asyncio.run(go())
    assert done["offline"] == ["cpe1"]
    assert planned == [NodeDown(node="cpe1")]


def test_an_instance_counts_the_users_steered_through_it(db: Database) -> None:
    """NetFATE Table II's "Number of Active Users": kept from the desired steering."""
    from netfate.orchestrator import lcm_records as rec

    _placed(db)
    _shared(db)
    with db.session() as s:
        repo.create_user(s, "user2", "Pw-user2-long-enough")
        rec.steer(s, "user1", "cpe1", ["i1"], None, None)
        rec.steer(s, "user2", "cpe1", ["i1"], None, None)
        assert repo.get_instance(s, "i1").active_users == ["user1", "user2"]
        rec.unsteer(s, "user1", "cpe1")
        assert repo.get_instance(s, "i1").active_users == ["user2"]
        rec.steer(s, "user2", "cpe1", [], None, None)  # steered without it
        assert repo.get_instance(s, "i1").active_users == []


def test_the_repairs_read_a_shared_instance_as_used_by_each_of_its_users(db: Database
                                                                         ) -> None:
    """Else a user who joined another user's shared NF would look short of an NF (and
    steered through an unknown one), and be repaired forever."""
    from netfate.orchestrator import lcm_records as rec
    from netfate.orchestrator.repair import user_records

    _placed(db)
    _shared(db)
    with db.session() as s:
        repo.create_user(s, "user2", "Pw-user2-long-enough", required_nfs=["firewall"])
        repo.add_session(s, user="user2", node="cpe1")
        rec.steer(s, "user2", "cpe1", ["i1"], None, None)
        (r,) = [u for u in user_records(s) if u.user == "user2"]
    assert r.instances == {"i1": "cpe1"} and r.steered == {"cpe1": ("firewall",)}


def _vm_agents(bus: FakeBus, target_live: bool = True, out_ok: bool = True) -> None:
    """cpe1 runs the NF as a VM; cpe2 can take it live (or not: a native target)."""
    def source(cmd: Command, nodes: list[str]) -> Reply:
        if cmd.op == "migrate_spec":
            return Reply(ok=True, data={"live_migrate": True, "owner": "user1", "state":
                                        "running"})
        if cmd.op == "migrate_out":
            return Reply(ok=out_ok, error=None if out_ok else "migration failed",
                         data={"total_ms": 900, "downtime_ms": 5})
        return converge(cmd, nodes)

    def target(cmd: Command, nodes: list[str]) -> Reply:
        if cmd.op == "migrate_in":
            return Reply(ok=True, data={"uri": "tcp:127.0.0.1:4444"}) if target_live else \
                Reply(ok=False, error="InvalidInput: native does not live-migrate")
        return converge(cmd, nodes)

    bus.agents["cpe1"], bus.agents["cpe2"] = source, target


def test_a_vm_migrates_live_when_both_ends_can(db: Database) -> None:
    facts = planner.InstanceFacts(**{**_placed(db).__dict__, "flavour": "vm"})
    bus = FakeBus()
    _vm_agents(bus)
    ok, occ = run(db, bus, lambda op: planner.migrate(op, "i1", facts, "cpe2", "i2"),
                  LcmOperation.MIGRATE)
    assert ok and occ["state"] == "COMPLETED"
    assert bus.sent == [("cpe2", "apply"), ("cpe1", "migrate_spec"), ("cpe2", "migrate_in"),
                        ("cpe1", "migrate_out"), ("cpe2", "migrate_finish"), ("cpe1", "apply")]
    assert {"prepare_ms", "live-migrate_ms"} <= set(occ["params"]["timings"])


def test_a_vm_whose_target_cannot_take_it_live_moves_by_export_import(db: Database) -> None:
    facts = planner.InstanceFacts(**{**_placed(db).__dict__, "flavour": "vm"})
    bus = FakeBus()
    _vm_agents(bus, target_live=False)  # e.g. a native target: the state moves as before
    ok, occ = run(db, bus, lambda op: planner.migrate(op, "i1", facts, "cpe2", "i3"),
                  LcmOperation.MIGRATE)
    assert occ["state"] == "COMPLETED"
    assert ok and ("cpe1", "export_state") in bus.sent and ("cpe2", "import_state") in bus.sent


def test_a_failed_live_migration_is_undone_and_the_source_serves_on(db: Database) -> None:
    facts = planner.InstanceFacts(**{**_placed(db).__dict__, "flavour": "vm"})
    bus = FakeBus()
    _vm_agents(bus, out_ok=False)
    ok, occ = run(db, bus, lambda op: planner.migrate(op, "i1", facts, "cpe2", "i2"),
                  LcmOperation.MIGRATE)
    assert not ok and occ["state"] == "ROLLED_BACK"
    assert "migration failed" in occ["error"]["detail"]
    assert desired(db, "i1") == Presence.PRESENT


def batch_agent(docs: dict[str, dict[str, Any]], per_reply: int | None = None,
                asked: list[list[str]] | None = None) -> Agent:
    """An agent answering export_states: the documents it has (an NF it lacks is an
    error), at most `per_reply` per reply (the rest `left`, as a full reply budget does)."""
    def agent(cmd: Command, nodes: list[str]) -> Reply:
        if cmd.op != "export_states":
            return converge(cmd, nodes)
        if asked is not None:
            asked.append(list(cmd.instance_ids))
        ids = cmd.instance_ids
        took = ids[:per_reply] if per_reply else ids
        return Reply(ok=True, data={
            "states": {i: docs[i] for i in took if i in docs},
            "errors": {i: f"NotFound: no NF {i}" for i in took if i not in docs},
            "left": ids[len(took):]})
    return agent


def _running_on_cpe1(db: Database, n: int) -> list[str]:
    from netfate.db.models import ActualState

    ids = [f"i{k:03d}" for k in range(n)]
    with db.session() as s:
        sha = repo.list_bundles(s, name="firewall")[0].sha256
        for n_ in ("cpe1", "cpe2"):
            repo.set_node_online(s, n_, True)
        for k, iid in enumerate(ids):
            repo.create_user(s, f"u{k}", "Pw-user1-long-enough")
            repo.upsert_instance(s, node="cpe1", owner=f"u{k}", nf_name="firewall",
                                 bundle_sha256=sha, flavour="native", instance_id=iid)
            repo.get_instance(s, iid).actual_state = ActualState.RUNNING
    return ids


def test_a_checkpoint_pass_asks_each_node_for_its_nfs_in_batches(db: Database) -> None:
    from netfate.bus.messages import MAX_EXPORTS

    ids = _running_on_cpe1(db, MAX_EXPORTS + 6)
    docs = {i: {"ruleset": i} for i in ids if i != "i003"}  # one the agent cannot export
    asked: list[list[str]] = []
    bus, cps = FakeBus(), Checkpoints()
    bus.agents["cpe1"] = batch_agent(docs, per_reply=40, asked=asked)
    done = asyncio.run(cps.take(db, bus))  # type: ignore[arg-type]
    assert sorted(done) == sorted(docs)
    assert all(cps.get(i) is not None and cps.get(i).state == {"ruleset": i}  # type: ignore
               for i in docs)
    assert cps.get("i003") is None
    # batches of at most MAX_EXPORTS, what a reply left over asked again, each NF once
    assert all(len(a) <= MAX_EXPORTS for a in asked)
    assert sorted(i for a in asked for i in a[:40]) == sorted(ids)
    assert len(asked) == 2 and asked[1][0] == "i040"  # the 24 left, then the 6 not asked


def test_a_checkpoint_pass_falls_back_to_one_nf_per_command_for_an_agent_of_before(
        db: Database) -> None:
    ids = _running_on_cpe1(db, 3)

    def before(cmd: Command, nodes: list[str]) -> Reply:
        if cmd.op == "export_states":  # what an agent of before answers an unknown op
            return Reply(ok=False, error="ValidationError: op")
        return Reply(ok=True, data={"ruleset": cmd.instance_id})

    bus, cps = FakeBus(), Checkpoints()
    bus.agents["cpe1"] = before
    assert sorted(asyncio.run(cps.take(db, bus))) == ids  # type: ignore[arg-type]
    assert bus.sent == [("cpe1", "export_states")] + [("cpe1", "export_state")] * 3


def test_a_reply_without_progress_ends_the_node_s_pass(db: Database) -> None:
    """An agent that leaves everything over (and exports nothing) is not asked forever."""
    _running_on_cpe1(db, 2)

    def stuck(cmd: Command, nodes: list[str]) -> Reply:
        return Reply(ok=True, data={"states": {}, "errors": {},
                                    "left": list(cmd.instance_ids)})

    bus, cps = FakeBus(), Checkpoints()
    bus.agents["cpe1"] = stuck
    assert asyncio.run(cps.take(db, bus)) == []  # type: ignore[arg-type]
    assert bus.sent == [("cpe1", "export_states")]
