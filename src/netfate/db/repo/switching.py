"""What the switches' desired states are built from, read in one transaction as plain data:
nodes' roles, desired steering rules, active sessions, the NF instances of steered chains
(with their descriptors' ports), users' traffic classes and each node's TS rules. The
orchestrator's pure `switch_state` decides from this; nothing here decides."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.controller.model import TSRule, stored_rules
from netfate.db.models import (
    Node,
    SessionState,
    SteeringRule,
    TsRule,
    User,
    UserSession,
    VnfInstance,
    VnfPackage,
)


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
    shared: bool = False  # one instance for many users (descriptor `shared`): VLAN-tagged


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

    # Indexes built once per read (not per switch): deciding every switch's state from one
    # read is then linear in the records, not nodes x records.
    @cached_property
    def newest(self) -> dict[str, SteeredRule]:
        """user -> their newest desired rule (where they are located)."""
        out: dict[str, SteeredRule] = {}
        for r in self.rules:
            out.setdefault(r.user, r)
        return out

    @cached_property
    def by_nf_node(self) -> dict[str, list[SteeredRule]]:
        """node -> the newest rules (one per user, in user order) whose chain has an NF
        there: the candidates for transits at that node."""
        out: dict[str, list[SteeredRule]] = {}
        for r in self.newest.values():
            for node in dict.fromkeys(nf.node for iid in r.chain
                                      if (nf := self.nfs.get(iid)) is not None):
                out.setdefault(node, []).append(r)
        return out

    @cached_property
    def anchors(self) -> dict[str, tuple[SteeredRule, str]]:
        """user -> (newest rule, the node of their session) for users mid-migration: their
        session is at another node than their newest steering, whose chain still serves
        them."""
        return {u: (r, self.sessions[u]) for u, r in self.newest.items()
                if r.chain and self.sessions.get(u) not in (None, r.node)}

    @cached_property
    def newest_at(self) -> dict[str, tuple[SteeredRule, ...]]:
        """node -> the newest rules (one per user) located at it, by user."""
        out: dict[str, list[SteeredRule]] = {}
        for r in self.newest.values():
            out.setdefault(r.node, []).append(r)
        return {n: tuple(rs) for n, rs in out.items()}

    @cached_property
    def rules_at(self) -> dict[str, tuple[SteeredRule, ...]]:
        """node -> the desired rules at it, in the records' order."""
        out: dict[str, list[SteeredRule]] = {}
        for r in self.rules:
            out.setdefault(r.node, []).append(r)
        return {n: tuple(rs) for n, rs in out.items()}


_NAMES: sa.BindParameter[Any] = sa.bindparam("names", expanding=True)
_NODES: sa.BindParameter[Any] = sa.bindparam("nodes", expanding=True)
_ACTIVE = UserSession.state == SessionState.ACTIVE
_DESIRED = sa.and_(SteeringRule.desired.is_(True), SteeringRule.mac.is_not(None))
# The users a set of switches depends on: steered at one of them, or with their session
# there (a visitor mid-migration).
_USERS_AT = sa.union(
    sa.select(SteeringRule.user_name).where(_DESIRED, SteeringRule.node_name.in_(_NODES)),
    sa.select(UserSession.user_name).where(_ACTIVE, UserSession.node_name.in_(_NODES)),
).scalar_subquery()
_Q_RULES = (sa.select(SteeringRule.user_name, SteeringRule.node_name, SteeringRule.mac,
                      SteeringRule.ip, SteeringRule.chain)
            .where(_DESIRED)
            .order_by(SteeringRule.user_name, SteeringRule.updated_at.desc()))
_Q_SESSIONS = (sa.select(UserSession.user_name, UserSession.node_name,
                         UserSession.idle_timeout).where(_ACTIVE))
_Q_NFS = (sa.select(VnfInstance.id, VnfInstance.node_name, VnfInstance.nf_name,
                    VnfInstance.bundle_sha256, VnfPackage.uploaded_at)
          .outerjoin(VnfPackage, VnfPackage.sha256 == VnfInstance.bundle_sha256)
          .where(VnfInstance.id.in_(_NAMES)))
_Q_DESCRIPTORS = sa.select(VnfPackage.sha256, VnfPackage.descriptor).where(
    VnfPackage.sha256.in_(_NAMES))
_Q_CLASSES = sa.select(User.name, User.classifiers).where(User.name.in_(_NAMES))
_Q_ROLES = sa.select(Node.name, Node.role)
_Q_TS = (sa.select(TsRule.node_name, TsRule.rule_id, TsRule.priority, TsRule.match,
                   TsRule.output).order_by(TsRule.node_name, TsRule.rule_id))
# The same, scoped to `nodes` (built once: building a statement per call costs more than
# running it on SQLite).
_Q_ROLES_AT = _Q_ROLES.where(Node.name.in_(_NODES))
_Q_RULES_AT = _Q_RULES.where(SteeringRule.user_name.in_(_USERS_AT))
_Q_SESSIONS_AT = _Q_SESSIONS.where(UserSession.user_name.in_(_USERS_AT))
_Q_TS_AT = _Q_TS.where(TsRule.node_name.in_(_NODES))


# (sha256, upload time) -> (the descriptor's ports, whether it is shared). A bundle is
# stored by the sha256 of its bytes and its descriptor is never rewritten; the upload time
# tells a bundle deleted and uploaded again. So an entry can't go stale (in this process or
# with replicas), and it saves reading and decoding a big JSON document for every
# publication (several per roam). Bounded: cleared past _BUNDLES_MAX entries.
_Bundle = tuple[str, float]
_bundles: dict[_Bundle, tuple[tuple[dict[str, Any], ...], bool]] = {}
_BUNDLES_MAX = 1024


def _bundle_ports(conn: sa.Connection, keys: set[_Bundle]
                  ) -> dict[_Bundle, tuple[tuple[dict[str, Any], ...], bool]]:
    """Ports and sharing of the bundles `keys` (one read for those not known yet)."""
    missing = sorted(k for k in keys if k not in _bundles)
    if missing:
        if len(_bundles) + len(missing) > _BUNDLES_MAX:
            _bundles.clear()
        want = dict(missing)  # sha -> the upload time read with the instances
        for sha, desc in conn.execute(_Q_DESCRIPTORS, {"names": sorted(want)}):
            d = desc or {}
            _bundles[(sha, want[sha])] = (
                tuple(p for p in d.get("ports", []) if isinstance(p, dict)),
                d.get("shared") is True)
    return {k: got for k in keys if (got := _bundles.get(k)) is not None}


def switching_records(session: Session, nodes: Collection[str] | None = None
                      ) -> SwitchingRecords:
    """Everything the switches' states depend on in the database, as plain data: of every
    node, or (`nodes`) what the states of those nodes depend on: their roles, the users
    steered or with a session at any of them (all of those users' rules and sessions), their
    chains' NFs and classes, the nodes' TS rules. A core's state needs the nodes below it
    in `nodes` too. Its cost grows with the users at `nodes`, not with all users."""
    conn = session.connection()
    q_roles, q_rules, q_sessions, q_ts = _Q_ROLES, _Q_RULES, _Q_SESSIONS, _Q_TS
    params: dict[str, Any] = {}
    if nodes is not None:
        params = {"nodes": sorted(set(nodes))}
        q_roles, q_rules, q_sessions, q_ts = _Q_ROLES_AT, _Q_RULES_AT, _Q_SESSIONS_AT, _Q_TS_AT
    roles = {n: r.value for n, r in conn.execute(q_roles, params)}
    rules = tuple(SteeredRule(user=u, node=n, mac=m or "", ip=ip, chain=tuple(c or ()))
                  for u, n, m, ip, c in conn.execute(q_rules, params))  # (no NULL MAC)
    sessions: dict[str, str] = {}
    idle_timeouts: dict[str, int] = {}
    for u, n, idle in conn.execute(q_sessions, params):
        sessions[u] = n
        if idle:
            idle_timeouts[u] = idle
    ids = sorted({i for r in rules for i in r.chain})
    nfs: dict[str, ChainNf] = {}
    if ids:
        rows = list(conn.execute(_Q_NFS, {"names": ids}))
        ports_of = _bundle_ports(conn, {(r[3], r[4]) for r in rows if r[4] is not None})
        for iid, node, nf, sha, uploaded in rows:
            ports, shared = ports_of.get((sha, uploaded), ((), False))
            nfs[iid] = ChainNf(node=node, nf=nf, ports=ports, shared=shared)
    users = sorted({r.user for r in rules})
    classes: dict[str, tuple[dict[str, Any], ...]] = {}
    if users:
        classes = {n: tuple(c or ()) for n, c in conn.execute(_Q_CLASSES, {"names": users})}
    raw: dict[str, list[dict[str, Any]]] = {}
    for node, rule_id, priority, match, output in conn.execute(q_ts, params):
        raw.setdefault(node, []).append(
            {"rule_id": rule_id, "priority": priority, "match": match, "output": output})
    ts_rules = {n: stored_rules(rs, f"node {n}") for n, rs in raw.items()}
    return SwitchingRecords(roles=roles, rules=rules, sessions=sessions, nfs=nfs,
                            classes=classes,
                            ts_rules={n: tuple(r) for n, r in ts_rules.items()},
                            idle_timeouts=idle_timeouts)
