"""Flavour change on move (state belongs to the NF, not the flavour): the engine's fallback
moves a user's native firewall from an overloaded CPE to the DC, where the resolver picks the
container flavour, and back to native when the CPE has room; the coordinator records each
instance in the flavour the engine chose and carries the exported state document across
unchanged (the same format for every flavour)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from netfate import catalogue
from netfate.bundle import inspect_bundle
from netfate.bus.messages import Command, NFActual, Reply
from netfate.db import Database, repo, sqlite_url
from netfate.db.models import LcmOperation
from netfate.engine import CatalogueEntry, Migrate, NodeTelemetry, Place, UserAssociated, plan
from netfate.engine.model import Implementation
from netfate.orchestrator import planner
from netfate.orchestrator.coordinator import Coordinator
from netfate.orchestrator.hub import EventHub

from .test_engine_support import FW_CAPS, IP, MAC, dc, node, run, user, world

ALL = frozenset({"native", "container", "vm"})
FIREWALL = CatalogueEntry(
    name="firewall", capabilities=FW_CAPS, memory_mb=16, flavours=("native", "container"),
    implementations=(Implementation(flavour="native", memory_mb=16),
                     Implementation(flavour="container", memory_mb=24, disk_mb=8)))
LOGIN = UserAssociated(user="alice", node="cpe1", mac=MAC, ip=IP)


def _world() -> Any:
    cpe = node("cpe1", total=256, free=200, cpu=0.3)  # native only, the testbed's default
    big = dc().model_copy(update={"flavours": ALL})
    return world([cpe, big], [user(at="cpe1")], catalogue=[FIREWALL])


def test_native_on_the_cpe_container_in_the_dc_and_back() -> None:
    snap, p = run(_world(), LOGIN)
    assert [(i.node, i.flavour) for i in p.of(Place)] == [("cpe1", "native")]

    overloaded = NodeTelemetry(node="cpe1", cpu_util=0.95, mem_free_mb=180, nf_count=1)
    snap, p = run(snap, overloaded)
    (out,) = p.of(Migrate)
    assert (out.src, out.dst, out.flavour) == ("cpe1", "dc1", "container")
    assert not out.state_lost and "cpu 0.95 >= 0.80" in out.reason

    room = NodeTelemetry(node="cpe1", cpu_util=0.2, mem_free_mb=200, nf_count=0)
    snap, p = run(snap, room)
    (back,) = p.of(Migrate)
    assert (back.src, back.dst, back.flavour) == ("dc1", "cpe1", "native")
    assert not back.state_lost


def test_a_cpe_without_room_for_native_gets_a_container_if_it_runs_them() -> None:
    cpe = node("cpe1", total=256, free=60).model_copy(update={"flavours": ALL})
    slim = FIREWALL.model_copy(update={"implementations": (
        Implementation(flavour="native", memory_mb=70),
        Implementation(flavour="container", memory_mb=12))})
    p = plan(world([cpe, dc()], [user(at="cpe1")], catalogue=[slim]), LOGIN)
    assert [(i.node, i.flavour) for i in p.of(Place)] == [("cpe1", "container")]


# -- the coordinator: records the engine's flavour, carries the state across -----------------

STATE = {"format": "netfate-state/1", "nf": "firewall",
         "ruleset": "table inet fw {}", "conntrack": ["tcp 6 431999 ESTABLISHED ..."]}


class Agents:
    """Every node's agent, recording what it is sent; the source exports STATE."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Command]] = []

    async def command(self, node: str, cmd: Command, timeout: float | None = None) -> Reply:
        self.sent.append((node, cmd))
        if cmd.op == "apply" and cmd.desired is not None:
            return Reply(ok=True, nfs=[NFActual(instance_id=i.instance_id, nf_name=i.nf_name,
                                                owner=i.owner, state="running",
                                                bundle_sha256=i.bundle_sha256)
                                       for i in cmd.desired.instances])
        if cmd.op == "export_state":
            return Reply(ok=True, data=STATE)
        return Reply(ok=True)

    def flavours(self, node: str) -> dict[str, str]:
        """The flavour of each instance in the last desired state pushed to `node`."""
        last = [c for n, c in self.sent if n == node and c.op == "apply"][-1]
        assert last.desired is not None
        return {i.instance_id: i.flavour for i in last.desired.instances}


@pytest.fixture
def db(tmp_path: Any) -> Iterator[Database]:
    d = Database.create(sqlite_url(tmp_path))
    data = catalogue.bundle_bytes("firewall")
    desc, _ = inspect_bundle(data)
    stored = desc.model_dump(mode="json", by_alias=True)
    stored.update({"flavours": ["native", "container"],
                   "implementations": {"container": {"memory-mb": 24, "disk-mb": 8}}})
    with d.session() as s:
        repo.upsert_node(s, "cpe1", role="cpe", infrastructure={"flavours": ["native"]},
                         resources={"mem_total_mb": 256, "mem_free_mb": 200})
        repo.upsert_node(s, "dc1", role="dc",
                         infrastructure={"flavours": ["native", "container", "vm"]},
                         resources={"mem_total_mb": 8192, "mem_free_mb": 8000})
        repo.create_user(s, "user1", "Pw-user1-long-enough")
        sha = repo.add_bundle(s, data, name=desc.name, version=desc.version,
                              descriptor=stored).sha256
        repo.upsert_instance(s, node="cpe1", owner="user1", nf_name="firewall",
                             bundle_sha256=sha, flavour="native", instance_id="i1")
    yield d
    d.dispose()


def _migrate(db: Database, bus: Agents, src: str, iid: str, dst: str, new_iid: str,
             flavour: str | None) -> bool:
    facts = planner.InstanceFacts(node=src, owner="user1", nf="firewall", exportable=True)

    async def go() -> bool:
        c = Coordinator(db, bus, EventHub(), "http://x")  # type: ignore[arg-type]
        op_id = await c.new_op(LcmOperation.MIGRATE, iid, {})
        return await c.executor.run(planner.migrate(op_id, iid, facts, dst, new_iid,
                                                    flavour=flavour))
    return asyncio.run(go())


def _recorded(db: Database) -> dict[str, str]:
    with db.session() as s:
        return {i.id: i.flavour for i in repo.list_instances(s)}


def test_native_to_container_and_back_carries_the_state_unchanged(db: Database) -> None:
    bus = Agents()
    assert _migrate(db, bus, "cpe1", "i1", "dc1", "i2", "container")
    assert _recorded(db) == {"i2": "container"}
    assert bus.flavours("dc1") == {"i2": "container"}
    imported = [c for n, c in bus.sent if n == "dc1" and c.op == "import_state"]
    assert [c.state for c in imported] == [STATE]  # the native export, as the container's import

    bus = Agents()
    assert _migrate(db, bus, "dc1", "i2", "cpe1", "i3", "native")
    assert _recorded(db) == {"i3": "native"}
    assert bus.flavours("cpe1") == {"i3": "native"}
    imported = [c for n, c in bus.sent if n == "cpe1" and c.op == "import_state"]
    assert [c.state for c in imported] == [STATE]


def test_without_the_engines_choice_the_resolver_decides(db: Database) -> None:
    # An operator's migration (REST) names no flavour: the same resolver picks the DC's.
    assert _migrate(db, Agents(), "cpe1", "i1", "dc1", "i2", None)
    assert _recorded(db) == {"i2": "container"}


def test_a_flavour_the_node_does_not_run_is_not_recorded(db: Database) -> None:
    # The engine's choice is honoured only where the node advertises it (stale snapshot).
    assert _migrate(db, Agents(), "cpe1", "i1", "dc1", "i2", "wasm")
    assert _recorded(db) == {"i2": "container"}
