"""What the switches' desired states are built from, read in one transaction as plain data:
nodes' roles, desired steering rules, active sessions, the NF instances of steered chains
(with their descriptors' ports), users' traffic classes and each node's TS rules. The
orchestrator's pure `switch_state` decides from this; nothing here decides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.controller.model import TSRule
from netfate.db.models import (
    Node,
    SessionState,
    SteeringRule,
    User,
    UserSession,
    VnfInstance,
    VnfPackage,
)
from netfate.db.repo.ts_rules import as_rule, list_ts_rules


@dataclass(frozen=True)
class SteeredRule:
    """A desired steering rule (Table III) with the user's MAC: `chain` is instance ids in
    order."""

    user: str
    node: str
    mac: str
    ip: str | None = None
    chain: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChainNf:
    """An NF instance of a steered chain: where it runs, its NF, and its descriptor's ports
    (dicts with "name" and optionally "role": "lan"/"wan")."""

    node: str
    nf: str
    ports: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class SwitchingRecords:
    """The database's part of the switches' world. `rules` are ordered by user, newest first
    (a user steered at two CPEs mid-move is located at the one steered last)."""

    roles: dict[str, str] = field(default_factory=dict)          # node -> cpe/pe/dc
    rules: tuple[SteeredRule, ...] = ()
    sessions: dict[str, str] = field(default_factory=dict)       # user -> node (active)
    nfs: dict[str, ChainNf] = field(default_factory=dict)        # instance id -> NF
    classes: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)  # user ->
    ts_rules: dict[str, tuple[TSRule, ...]] = field(default_factory=dict)  # node -> Table I
    # user -> their login's Idle-Timeout (s), where its Access-Accept (or a CoA) gave one
    idle_timeouts: dict[str, int] = field(default_factory=dict)


_Q_ROLES = sa.select(Node.name, Node.role)
_Q_RULES = (sa.select(SteeringRule.user_name, SteeringRule.node_name, SteeringRule.mac,
                      SteeringRule.ip, SteeringRule.chain)
            .where(SteeringRule.desired.is_(True), SteeringRule.mac.is_not(None))
            .order_by(SteeringRule.user_name, SteeringRule.updated_at.desc()))
_Q_SESSIONS = (sa.select(UserSession.user_name, UserSession.node_name,
                         UserSession.idle_timeout)
               .where(UserSession.state == SessionState.ACTIVE))
_NAMES: sa.BindParameter[Any] = sa.bindparam("names", expanding=True)
_Q_NFS = (sa.select(VnfInstance.id, VnfInstance.node_name, VnfInstance.nf_name,
                    VnfPackage.descriptor)
          .join(VnfPackage, VnfPackage.sha256 == VnfInstance.bundle_sha256)
          .where(VnfInstance.id.in_(_NAMES)))
_Q_CLASSES = sa.select(User.name, User.classifiers).where(User.name.in_(_NAMES))


def switching_records(session: Session) -> SwitchingRecords:
    """Everything the switches' states depend on in the database, as plain data."""
    conn = session.connection()
    roles = {n: r.value for n, r in conn.execute(_Q_ROLES)}
    rules = tuple(SteeredRule(user=u, node=n, mac=m or "", ip=ip, chain=tuple(c or ()))
                  for u, n, m, ip, c in conn.execute(_Q_RULES))  # (the query has no NULL MAC)
    sessions: dict[str, str] = {}
    idle_timeouts: dict[str, int] = {}
    for u, n, idle in conn.execute(_Q_SESSIONS):
        sessions[u] = n
        if idle:
            idle_timeouts[u] = idle
    ids = sorted({i for r in rules for i in r.chain})
    nfs: dict[str, ChainNf] = {}
    if ids:
        for iid, node, nf, desc in conn.execute(_Q_NFS, {"names": ids}):
            ports = tuple(p for p in (desc or {}).get("ports", []) if isinstance(p, dict))
            nfs[iid] = ChainNf(node=node, nf=nf, ports=ports)
    users = sorted({r.user for r in rules})
    classes: dict[str, tuple[dict[str, Any], ...]] = {}
    if users:
        classes = {n: tuple(c or ()) for n, c in conn.execute(_Q_CLASSES, {"names": users})}
    ts_rules: dict[str, list[TSRule]] = {}
    for row in list_ts_rules(session):
        ts_rules.setdefault(row.node_name, []).append(as_rule(row))
    return SwitchingRecords(roles=roles, rules=rules, sessions=sessions, nfs=nfs,
                            classes=classes,
                            ts_rules={n: tuple(r) for n, r in ts_rules.items()},
                            idle_timeouts=idle_timeouts)
