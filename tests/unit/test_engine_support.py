"""Builders shared by the engine tests (no tests here)."""

from __future__ import annotations

from collections.abc import Iterable

from netfate.engine import (
    CatalogueEntry,
    InstanceView,
    NodeView,
    Plan,
    Snapshot,
    UserView,
    plan,
)
from netfate.engine.events import Event
from netfate.engine.model import InstanceState, Role
from netfate.engine.simulate import step

FW_CAPS = frozenset({"nftables", "conntrack"})
ALL_CAPS = frozenset({"nftables", "conntrack", "tc"})
FIREWALL = CatalogueEntry(name="firewall", capabilities=FW_CAPS, memory_mb=16, cpu_percent=50)
SHAPER = CatalogueEntry(name="shaper", capabilities=frozenset({"tc"}), memory_mb=64)
MAC = "02:aa:00:00:00:01"
IP = "10.0.0.2"


def node(
    name: str,
    role: Role = "cpe",
    *,
    caps: frozenset[str] = ALL_CAPS,
    total: int = 1000,
    free: int = 800,
    cpu: float = 0.1,
    nfs: int = 0,
    max_nfs: int | None = None,
    online: bool = True,
) -> NodeView:
    return NodeView(name=name, role=role, capabilities=caps, mem_total_mb=total,
                    mem_free_mb=free, cpu_util=cpu, nf_count=nfs, max_nfs=max_nfs,
                    online=online)


def dc(name: str = "dc1", **kw: object) -> NodeView:
    kw.setdefault("total", 100_000)
    kw.setdefault("free", 90_000)
    kw.setdefault("cpu", 0.2)
    return node(name, "dc", **kw)  # type: ignore[arg-type]


def user(
    name: str = "alice",
    nfs: tuple[str, ...] = ("firewall",),
    *,
    at: str | None = None,
    active: bool | None = None,
    mac: str | None = MAC,
    ip: str | None = IP,
    last_seen: float | None = None,
) -> UserView:
    return UserView(name=name, required_nfs=nfs, access_node=at, mac=mac, ip=ip,
                    session_active=at is not None if active is None else active,
                    last_seen=last_seen)


def inst(node: str, owner: str, nf: str, state: InstanceState = "running") -> InstanceView:
    return InstanceView(instance_id=f"{node}-{owner}-{nf}", nf=nf, owner=owner, node=node,
                        state=state)


def world(
    nodes: Iterable[NodeView],
    users: Iterable[UserView] = (),
    instances: Iterable[InstanceView] = (),
    catalogue: Iterable[CatalogueEntry] = (FIREWALL, SHAPER),
    now: float = 1000.0,
) -> Snapshot:
    return Snapshot(nodes=tuple(nodes), users=tuple(users), instances=tuple(instances),
                    catalogue=tuple(catalogue), now=now)


def run(snap: Snapshot, *events: Event) -> tuple[Snapshot, Plan]:
    """Plan and apply each event in turn; the final snapshot and the last plan."""
    last = Plan()
    for ev in events:
        last = plan(snap, ev)
        snap = step(snap, ev, last)
    return snap, last


def kinds(p: Plan) -> list[str]:
    return [i.kind for i in p.intents]
