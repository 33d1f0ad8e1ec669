"""NFVI nodes (CPE, PE, DC): registration, liveness and reported resources."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.db.models import Node, NodeRole, VnfInstance
from netfate.db.repo import check
from netfate.db.repo._common import get_or_404, guard, stamp, where_given
from netfate.errors import Conflict


def upsert_node(
    session: Session,
    name: str,
    *,
    role: NodeRole | str,
    capabilities: list[str] | None = None,
    infrastructure: dict[str, Any] | None = None,
    resources: dict[str, Any] | None = None,
    online: bool = True,
    now: float | None = None,
) -> Node:
    """Register a node or refresh it (an agent's hello). Omitted fields keep their values."""
    check.name("node name", name)
    kind = check.enum(NodeRole, role, "node role")
    t = stamp(now)
    with guard(session, f"node {name!r}"):
        node = session.get(Node, name)
        if node is None:
            node = Node(
                name=name, registered_at=t, capabilities=[], infrastructure={}, resources={}
            )
            session.add(node)
        node.role = kind
        if capabilities is not None:
            node.capabilities = check.str_list("capabilities", capabilities)
        if infrastructure is not None:
            node.infrastructure = check.mapping("infrastructure", infrastructure)
        if resources is not None:
            node.resources = check.mapping("resources", resources)
        node.online = bool(online)
        if online:
            node.last_seen = t
    return node


def get_node(session: Session, name: str) -> Node:
    return get_or_404(session, Node, name, "node")


def list_nodes(
    session: Session, *, role: NodeRole | str | None = None, online: bool | None = None
) -> list[Node]:
    node_role = None if role is None else check.enum(NodeRole, role, "node role")
    q = where_given(
        sa.select(Node).order_by(Node.name), (Node.role, node_role), (Node.online, online)
    )
    return list(session.scalars(q))


def set_node_online(session: Session, name: str, online: bool, *, now: float | None = None) -> Node:
    """Mark a node online (its agent is connected; last_seen is refreshed) or offline."""
    node = get_node(session, name)
    with guard(session, f"node {name!r}"):
        node.online = bool(online)
        if online:
            node.last_seen = stamp(now)
    return node


def update_node_resources(
    session: Session, name: str, resources: dict[str, Any], *, now: float | None = None
) -> Node:
    """Telemetry from the node's agent (mem_total_mb, mem_free_mb, cpu_util, nf_count...)."""
    node = get_node(session, name)
    with guard(session, f"node {name!r}"):
        node.resources = check.mapping("resources", resources)
        node.last_seen = stamp(now)
    return node


def delete_node(session: Session, name: str) -> None:
    """Forget a node. Refused while NF instances are recorded on it; its sessions and steering
    rules go with it, and users attached to it are left with no access node."""
    node = get_node(session, name)
    n = session.scalar(
        sa.select(sa.func.count()).select_from(VnfInstance).where(VnfInstance.node_name == name)
    )
    if n:
        raise Conflict(f"node {name!r} still has {n} NF instance(s); delete them first")
    with guard(
        session, f"node {name!r}", fk=Conflict(f"node {name!r} is still referred to")
    ):
        session.delete(node)


def node_liveness(session: Session) -> list[tuple[str, bool, float | None]]:
    """(name, online, last_seen) of every node, by name: plain rows."""
    q = sa.select(Node.name, Node.online, Node.last_seen).order_by(Node.name)
    return [(n, bool(o), s) for n, o, s in session.execute(q)]
