"""The engine's view of the world, read from the NFVI database."""

from __future__ import annotations

import time

from sqlalchemy.orm import Session

from netfate.db import repo
from netfate.db.models import ActualState, DesiredState
from netfate.engine import CatalogueEntry, InstanceView, NodeView, Snapshot, UserView


def catalogue(session: Session) -> tuple[CatalogueEntry, ...]:
    latest: dict[str, CatalogueEntry] = {}
    for b in repo.list_bundles(session):
        d = b.descriptor
        deps = [c["name"] for c in (d.get("dependencies") or {}).get("capability", [])]
        res = d.get("resources") or {}
        latest[b.name] = CatalogueEntry(
            name=b.name, capabilities=frozenset(deps),
            memory_mb=int(res.get("memory-mb", 32)), cpu_percent=int(res.get("cpu-percent", 100)),
        )
    return tuple(latest.values())


def build(session: Session, now: float | None = None) -> Snapshot:
    nodes = []
    for n in repo.list_nodes(session):
        r = n.resources or {}
        nodes.append(NodeView(
            name=n.name, role=n.role.value, online=n.online,
            capabilities=frozenset(n.capabilities or []),
            mem_total_mb=int(r.get("mem_total_mb", 0)), mem_free_mb=int(r.get("mem_free_mb", 0)),
            cpu_util=float(r.get("cpu_util", 0.0)), nf_count=int(r.get("nf_count", 0)),
        ))
    users = []
    for u in repo.list_users(session):
        users.append(UserView(
            name=u.name, required_nfs=tuple(u.required_nfs or ()), access_node=u.access_node,
            mac=u.mac, ip=u.ip, last_seen=u.last_seen,
            session_active=repo.active_session(session, u.name) is not None,
        ))
    instances = []
    for i in repo.list_instances(session):
        if i.desired_state != DesiredState.PRESENT:
            continue
        state = {
            ActualState.RUNNING: "running", ActualState.FAILED: "failed",
        }.get(i.actual_state, "pending")
        instances.append(InstanceView(
            instance_id=i.id, nf=i.nf_name, owner=i.owner, node=i.node_name,
            state=state,  # type: ignore[arg-type]
        ))
    return Snapshot(nodes=tuple(nodes), users=tuple(users), instances=tuple(instances),
                    catalogue=catalogue(session), now=now if now is not None else time.time())
