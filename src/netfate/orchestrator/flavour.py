"""Which flavour an NF instance runs in, read from the NFVI database: the NF's descriptor and
the node's capability report, decided by the resolver (netfate.resolver) exactly as the engine
decides when it places (netfate.engine.capacity.placement): one place decides."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.db.models import Node, VnfPackage
from netfate.descriptor import implementations_of
from netfate.engine import CatalogueEntry, NodeView
from netfate.engine.model import Implementation
from netfate.errors import MissingCapability, NotFound
from netfate.resolver import capability_key

_Q_DESCRIPTOR = sa.select(VnfPackage.name, VnfPackage.descriptor).where(
    VnfPackage.sha256 == sa.bindparam("sha"))
_Q_NODE = sa.select(Node.name, Node.role, Node.online, Node.capabilities, Node.resources,
                    Node.infrastructure, Node.admin_down).where(Node.name == sa.bindparam("node"))


def catalogue_entry(name: str, descriptor: dict[str, Any]) -> CatalogueEntry:
    """The engine's view of an NF from its descriptor as stored (netfate.descriptor)."""
    deps = (descriptor.get("dependencies") or {}).get("capability", [])
    caps = [_key(c) for c in deps if isinstance(c, dict) and c.get("name")]
    impls = implementations_of(descriptor)
    res = descriptor.get("resources") or {}
    return CatalogueEntry(
        name=name, capabilities=frozenset(caps),
        memory_mb=int(res.get("memory-mb", 32)), cpu_percent=int(res.get("cpu-percent", 100)),
        flavours=tuple(i.flavour for i in impls),
        implementations=tuple(Implementation(flavour=i.flavour, memory_mb=i.memory_mb,
                                             cpu_percent=i.cpu_percent, disk_mb=i.disk_mb)
                              for i in impls),
        shared=bool(descriptor.get("shared", False)))


def _key(cap: dict[str, Any]) -> str:
    try:
        return capability_key(str(cap["name"]), str(cap.get("type") or "package"))
    except ValueError:
        return str(cap["name"])  # stored before kinds were checked: never matches a prefix


def flavour_for(session: Session, node: str, bundle_sha256: str,
                preferred: str | None = None) -> str:
    """The flavour the bundle's NF runs in on `node`.

    `preferred` (the engine's choice, carried by its Place/Migrate intent) when the node
    advertises it; else the resolver's pick from the node's report (flavours, capabilities,
    free memory); when no implementation fits those, the first of the NF's flavours the node
    advertises (the operator asked for this node: its agent refuses what it can't run, and
    says why). NotFound if the bundle is unknown; MissingCapability, naming both sides, if
    the node advertises none of the NF's flavours."""
    conn = session.connection()
    row = conn.execute(_Q_DESCRIPTOR, {"sha": bundle_sha256}).first()
    if row is None:
        raise NotFound(f"bundle {bundle_sha256[:12]} is not in the catalogue")
    entry = catalogue_entry(row.name, row.descriptor or {})
    n = conn.execute(_Q_NODE, {"node": node}).first()
    from netfate.orchestrator.snapshot import node_view

    view = node_view(n) if n is not None else NodeView(
        name=node, role="cpe", mem_total_mb=0, mem_free_mb=0, cpu_util=0.0)
    hosted = [f for f in entry.flavours if f in view.flavours]
    if not hosted:
        raise MissingCapability(
            f"node {node} runs none of {row.name}'s flavours {', '.join(entry.flavours)} "
            f"(it hosts {', '.join(sorted(view.flavours))})")
    if preferred is not None and preferred in hosted:
        return preferred
    return entry.resolve(view).flavour or hosted[0]
