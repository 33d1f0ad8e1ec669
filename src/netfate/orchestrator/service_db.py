"""The orchestrator service's reads and writes for the agents' messages and its start-up,
each one transaction, run through `Database.run` (off the event loop)."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate import catalogue
from netfate.bundle import inspect_bundle
from netfate.bus.messages import Notification, Register, SwitchPorts
from netfate.db import repo
from netfate.db.models import Node
from netfate.errors import NetfateError


def seed_catalogue(s: Session) -> None:
    """The shipped NFs in the catalogue (idempotent)."""
    for name in catalogue.NAMES:
        data = catalogue.bundle_bytes(name)
        desc, _ = inspect_bundle(data)
        repo.add_bundle(s, data, name=desc.name, version=desc.version,
                        descriptor=desc.model_dump(mode="json", by_alias=True))


def reported_ports(s: Session) -> dict[str, SwitchPorts]:
    """What the agents last reported about their switches (until they register again)."""
    out = {}
    for name, infra in s.execute(sa.select(Node.name, Node.infrastructure)):
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            ports = (infra or {}).get("switch_ports")
            if ports is not None:
                out[name] = SwitchPorts.model_validate(ports)
    return out


def register(s: Session, reg: Register) -> bool:
    """Record an agent's registration; whether the node was online already."""
    was_online = False
    with contextlib.suppress(NetfateError):
        was_online = repo.get_node(s, reg.node).online
    repo.upsert_node(s, reg.node, role=reg.role, capabilities=reg.capabilities,
                     infrastructure=reg.infrastructure, resources=reg.resources.model_dump(),
                     online=True)
    return was_online


def first_report(s: Session, node: str) -> dict[str, Any] | None:
    """A node's recorded readings at its first telemetry since the orchestrator started
    (marking it online); None if it is not registered."""
    try:
        n = repo.get_node(s, node)
    except NetfateError:
        return None
    if not n.online:
        repo.set_node_online(s, node, True)
    return dict(n.resources or {})


KEEP_NOTIFICATIONS = 100_000  # the newest kept; older ones go (NFs raise them all day)
PRUNE_EVERY = 1000  # notifications stored between two prunes


def store_notification(s: Session, n: Notification) -> int | None:
    """The stored notification's id; None when its NF is muted. Every PRUNE_EVERY-th
    stored, those older than the newest KEEP_NOTIFICATIONS are removed, so the table stays
    bounded however long the orchestrator runs."""
    if n.nf_id and repo.is_muted(s, n.nf_id):
        return None

    def clean(v: str | None) -> str | None:  # NFs write these: "" (nfcommon without NF_OWNER)
        v = (v or "").replace("\x00", "")  # or a NUL must not lose the notification
        return v or None
    row = repo.add_notification(
        s, type=clean(n.type) or "unknown", severity=clean(n.severity) or "warning",
        source=clean(n.source) or "unknown", detail=n.detail,
        nf_instance_id=clean(n.nf_id), node=clean(n.node), owner=clean(n.owner),
        ts=n.ts if math.isfinite(n.ts) else None)
    s.flush()
    if row.id % PRUNE_EVERY == 0:
        repo.prune_notifications(s, row.id, KEEP_NOTIFICATIONS)
    return row.id
