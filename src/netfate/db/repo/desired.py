"""The desired state of a node, derived from vnf_instances and steering_rules: what its agent
and the controller converge to (level-triggered, re-sent in full after any reconnect)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.db.models import ActualState, Node, Presence, SteeringRule, VnfInstance
from netfate.errors import NotFound

# Statements built once, read as plain rows (no ORM objects): this runs for every push, and
# building a statement per call costs more than running it on SQLite.
_NODE: sa.BindParameter[Any] = sa.bindparam("node")
_Q_NODE = sa.select(Node.name).where(Node.name == _NODE)
_Q_INSTANCES = (
    sa.select(VnfInstance.id, VnfInstance.nf_name, VnfInstance.owner, VnfInstance.bundle_sha256,
              VnfInstance.flavour, VnfInstance.config, VnfInstance.active_users)
    .where(VnfInstance.node_name == _NODE, VnfInstance.desired_state == Presence.PRESENT)
    .order_by(VnfInstance.id))
_Q_RULES = (
    sa.select(SteeringRule.user_name, SteeringRule.mac, SteeringRule.ip, SteeringRule.chain)
    .where(SteeringRule.node_name == _NODE, SteeringRule.desired.is_(True))
    .order_by(SteeringRule.user_name))
_Q_BEHIND = (sa.select(VnfInstance.node_name).distinct()
             .where(sa.or_(VnfInstance.desired_state == Presence.ABSENT,
                           VnfInstance.actual_state != ActualState.RUNNING)))


def desired_state_for_node(session: Session, node: str) -> dict[str, Any]:
    """A JSON-able dict: the instances that should be present on ``node`` and the steering
    rules that should be installed there, in a stable order, with a ``revision`` (a hash of
    the content) so an agent can tell that nothing changed. Raises NotFound for an unknown
    node."""
    conn = session.connection()
    if conn.execute(_Q_NODE, {"node": node}).scalar() is None:
        raise NotFound(f"node {node!r} does not exist")
    instances = conn.execute(_Q_INSTANCES, {"node": node})
    rules = conn.execute(_Q_RULES, {"node": node})
    state: dict[str, Any] = {
        "node": node,
        "instances": [
            {"id": i.id, "nf_name": i.nf_name, "owner": i.owner,
             "bundle_sha256": i.bundle_sha256, "flavour": i.flavour, "config": i.config,
             "active_users": i.active_users}
            for i in instances
        ],
        "steering": [{"user": r.user_name, "mac": r.mac, "ip": r.ip, "chain": r.chain}
                     for r in rules],
    }
    canonical = json.dumps(state, sort_keys=True, separators=(",", ":"))
    state["revision"] = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return state


def nodes_needing_push(session: Session) -> set[str]:
    """Nodes with an instance that should run but is not reported running, or that should be
    gone: one query for all nodes."""
    return set(session.scalars(_Q_BEHIND))
