"""The desired state of a node, derived from vnf_instances and steering_rules: what its agent
and the controller converge to (level-triggered, re-sent in full after any reconnect)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.db.models import DesiredState, Node, SteeringRule, VnfInstance
from netfate.db.repo._common import get_or_404


def desired_state_for_node(session: Session, node: str) -> dict[str, Any]:
    """A JSON-able dict: the instances that should be present on ``node`` and the steering
    rules that should be installed there, in a stable order, with a ``revision`` (a hash of
    the content) so an agent can tell that nothing changed."""
    get_or_404(session, Node, node, "node")
    instances = session.scalars(
        sa.select(VnfInstance)
        .where(VnfInstance.node_name == node, VnfInstance.desired_state == DesiredState.PRESENT)
        .order_by(VnfInstance.id)
    )
    rules = session.scalars(
        sa.select(SteeringRule)
        .where(SteeringRule.node_name == node, SteeringRule.desired.is_(True))
        .order_by(SteeringRule.user_name)
    )
    state: dict[str, Any] = {
        "node": node,
        "instances": [
            {
                "id": i.id,
                "nf_name": i.nf_name,
                "owner": i.owner,
                "bundle_sha256": i.bundle_sha256,
                "flavour": i.flavour,
                "config": i.config,
                "active_users": i.active_users,
            }
            for i in instances
        ],
        "steering": [
            {"user": r.user_name, "mac": r.mac, "ip": r.ip, "chain": r.chain} for r in rules
        ],
    }
    canonical = json.dumps(state, sort_keys=True, separators=(",", ":"))
    state["revision"] = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return state
