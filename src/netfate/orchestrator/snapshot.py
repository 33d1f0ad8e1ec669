"""The engine's view of the world, read from the NFVI database.

`build` reads the whole world: every node, user and instance. That is O(users) per event, so
for a policy that declares ``snapshot_scope = "event"`` (the default "netfate" policy does)
`build_for` reads only what the event can touch:

- a user event (associated, disassociated, idle): that user, their NF instances, the nodes
  those run on, the node of the event, their access node, and every DC node (the fallback);
- a node event (telemetry, up, down): the users whose access node it is and the owners of
  instances on it, with the same about each of them;
- Reconcile (and any other event): everything, as `build`.

A policy that looks further (at other users' instances, say) must not declare the scope: it
gets the whole snapshot, as before.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.db import repo
from netfate.db.models import (
    ActualState,
    Node,
    NodeRole,
    Presence,
    SessionState,
    SteeringRule,
    User,
    UserSession,
    VnfInstance,
    VnfPackage,
)
from netfate.engine import (
    CatalogueEntry,
    Event,
    InstanceView,
    NodeDown,
    NodeTelemetry,
    NodeUp,
    NodeView,
    Snapshot,
    UserAssociated,
    UserDisassociated,
    UserIdle,
    UserView,
)
from netfate.flavours import advertised
from netfate.orchestrator.flavour import catalogue_entry
from netfate.owners import OPERATOR

# Entries parsed from the bundles' descriptors, by the set of bundles they came from: the
# catalogue changes rarely, and parsing every descriptor for every event adds up.
_catalogue_cache: dict[tuple[tuple[str, float], ...], tuple[CatalogueEntry, ...]] = {}


def catalogue(session: Session) -> tuple[CatalogueEntry, ...]:
    key = tuple((sha, float(at)) for sha, at in session.connection().execute(_Q_BUNDLE_KEYS))
    hit = _catalogue_cache.get(key)
    if hit is not None:
        return hit
    # Each NF's newest package (repo.rank: its highest version) gives its entry.
    newest: dict[str, tuple[Any, dict[str, Any]]] = {}
    rows = session.execute(
        sa.select(VnfPackage.name, VnfPackage.version, VnfPackage.uploaded_at,
                  VnfPackage.sha256, VnfPackage.descriptor).order_by(VnfPackage.name))
    for name, version, at, sha, d in rows:
        r = repo.rank(version, at, sha)
        if name not in newest or r > newest[name][0]:
            newest[name] = (r, d or {})
    entries = tuple(catalogue_entry(name, d) for name, (_, d) in newest.items())
    if len(_catalogue_cache) > 16:
        _catalogue_cache.clear()
    _catalogue_cache[key] = entries
    return entries


# Columns read (Core rows, not ORM objects: no identity map, much less work per row).
_NODE = (Node.name, Node.role, Node.online, Node.capabilities, Node.resources,
         Node.infrastructure, Node.admin_down)
_USER = (User.name, User.required_nfs, User.access_node, User.mac, User.ip, User.last_seen)
_INSTANCE = (VnfInstance.id, VnfInstance.nf_name, VnfInstance.owner, VnfInstance.node_name,
             VnfInstance.actual_state, VnfInstance.active_users, VnfInstance.pinned)


# Statements built once (building one per call costs more than running it on SQLite).
_NAMES: sa.BindParameter[Any] = sa.bindparam("names", expanding=True)
_Q_USERS_IN = sa.select(*_USER).where(User.name.in_(_NAMES), User.name != OPERATOR)
_Q_INSTANCES_OF = sa.select(*_INSTANCE).where(
    VnfInstance.owner.in_(_NAMES), VnfInstance.desired_state == Presence.PRESENT)
_Q_INSTANCES_OF_NF = sa.select(*_INSTANCE).where(
    VnfInstance.nf_name.in_(_NAMES), VnfInstance.desired_state == Presence.PRESENT)
_Q_ACTIVE_IN = (sa.select(UserSession.user_name, UserSession.nfs_override)
                .where(UserSession.state == SessionState.ACTIVE,
                       UserSession.user_name.in_(_NAMES))
                .order_by(UserSession.started_at))
_Q_STEERED_IN = sa.select(SteeringRule.user_name, SteeringRule.node_name).where(
    SteeringRule.user_name.in_(_NAMES))
_Q_DC_NODES = sa.select(*_NODE).where(Node.role == NodeRole.DC)
_Q_NODES_IN = sa.select(*_NODE).where(Node.name.in_(_NAMES))
_Q_USERS_AT = sa.select(User.name).where(User.access_node == sa.bindparam("node"))
_Q_OWNERS_ON = sa.select(VnfInstance.owner).where(
    VnfInstance.node_name == sa.bindparam("node"),
    VnfInstance.desired_state == Presence.PRESENT)
_Q_USERS_ON = sa.select(VnfInstance.active_users).where(
    VnfInstance.node_name == sa.bindparam("node"),
    VnfInstance.desired_state == Presence.PRESENT)
_Q_BUNDLE_KEYS = (sa.select(VnfPackage.sha256, VnfPackage.uploaded_at)
                  .order_by(VnfPackage.name, VnfPackage.uploaded_at, VnfPackage.sha256))


def node_view(n: Any) -> NodeView:
    """From a Node or a row of its columns."""
    r = n.resources or {}
    return NodeView(
        name=n.name, role=n.role.value, online=bool(n.online),
        admin_down=bool(getattr(n, "admin_down", False)),
        capabilities=frozenset(n.capabilities or []),
        mem_total_mb=int(r.get("mem_total_mb", 0)), mem_free_mb=int(r.get("mem_free_mb", 0)),
        cpu_util=float(r.get("cpu_util", 0.0)), nf_count=int(r.get("nf_count", 0)),
        flavours=advertised(n.infrastructure),
        disk_free_mb=_opt_int(r.get("disk_free_mb")),
        cpus=float(r["cpus"]) if isinstance(r.get("cpus"), int | float) and r["cpus"] > 0
        and math.isfinite(r["cpus"]) else None,  # inf (stored before) broke the resolver
        **_overlay(n.infrastructure),
    )


def _opt_int(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) and v >= 0 else None


def _overlay(infra: dict[str, Any] | None) -> dict[str, Any]:
    """The node's parent and tunnels from its switch-port report (NodeView's fields)."""
    ports = (infra or {}).get("switch_ports")
    if not isinstance(ports, dict):
        return {}
    links, up, tunnels = ports.get("links") or {}, ports.get("uplink"), ports.get("tunnels")
    out: dict[str, Any] = {"parent": links.get(up) if up and isinstance(links, dict) else None}
    if isinstance(tunnels, dict):
        out["tunnels"] = frozenset(str(k) for k in tunnels)
    return out


def user_view(u: Any, session_active: bool,
              steered: Mapping[str, list[str]] | None = None,
              override: list[str] | None = None) -> UserView:
    """``override``: the NFs a CoA set for the active login (None: the stored ones)."""
    nfs = override if override is not None and session_active else u.required_nfs
    return UserView(
        name=u.name, required_nfs=tuple(nfs or ()), access_node=u.access_node,
        mac=u.mac, ip=u.ip, last_seen=u.last_seen, session_active=session_active,
        steered_at=tuple(sorted((steered or {}).get(u.name, ()))),
    )


def _steered(rows: Iterable[Any]) -> dict[str, list[str]]:
    """User -> the nodes with their steering rules."""
    out: dict[str, list[str]] = {}
    for user, node in rows:
        out.setdefault(user, []).append(node)
    return out


_STATES: dict[ActualState, Any] = {ActualState.RUNNING: "running", ActualState.FAILED: "failed"}


def instance_view(i: Any) -> InstanceView:
    return InstanceView(instance_id=i.id, nf=i.nf_name, owner=i.owner, node=i.node_name,
                        state=_STATES.get(i.actual_state, "pending"),
                        users=tuple(i.active_users or ()), pinned=bool(i.pinned))


def _active(session: Session, users: Collection[str] | None) -> dict[str, list[str] | None]:
    """Users with an active session, each with its login's NF override (RFC 5176 CoA; None:
    none), one query, not one per user."""
    q = (sa.select(UserSession.user_name, UserSession.nfs_override)
         .where(UserSession.state == SessionState.ACTIVE).order_by(UserSession.started_at))
    if users is not None:
        q = q.where(UserSession.user_name.in_(list(users)))
    return {u: o for u, o in session.execute(q)}  # the newest row of each user last


def build(session: Session, now: float | None = None) -> Snapshot:
    """The whole world."""
    active = _active(session, None)
    nodes = [node_view(n) for n in session.execute(sa.select(*_NODE).order_by(Node.name))]
    steered = _steered(session.execute(
        sa.select(SteeringRule.user_name, SteeringRule.node_name)))
    users = [user_view(u, u.name in active, steered, active.get(u.name))
             for u in session.execute(sa.select(*_USER).where(User.name != OPERATOR)
                                             .order_by(User.name))]
    instances = [instance_view(i) for i in session.execute(
        sa.select(*_INSTANCE).where(VnfInstance.desired_state == Presence.PRESENT)
        .order_by(VnfInstance.id))]
    return Snapshot(nodes=tuple(nodes), users=tuple(users), instances=tuple(instances),
                    catalogue=catalogue(session), now=now if now is not None else time.time())


def scoped(policy: object) -> bool:
    """Whether `policy` plans a user or node event on that event's part of the world only."""
    return getattr(policy, "snapshot_scope", None) == "event"


def build_for(session: Session, event: Event, now: float | None = None) -> Snapshot:
    """What `event` can touch (see the module's doc); the whole world for other events."""
    match event:
        case UserAssociated() | UserDisassociated():
            return _build_users(session, [event.user], [event.node], now)
        case UserIdle():
            return _build_users(session, [event.user], [], now)
        case NodeTelemetry() | NodeUp() | NodeDown():
            conn = session.connection()
            node = event.node
            names = set(conn.execute(_Q_USERS_AT, {"node": node}).scalars())
            names.update(conn.execute(_Q_OWNERS_ON, {"node": node}).scalars())
            for users in conn.execute(_Q_USERS_ON, {"node": node}).scalars():
                names.update(users or ())  # those of a shared NF there
            return _build_users(session, sorted(names), [node], now)
    return build(session, now)


# Node rows with their JSON columns as stored text, and the NodeView made from each: a
# view depends on nothing but its row, so a row read again unchanged (every DC node, in every
# event's snapshot; a node's readings change at most once per telemetry flush) reuses its
# view instead of decoding three JSON documents and building it again. Keyed on the whole
# row, it can't go stale (in this process or with replicas). Bounded: cleared past
# _VIEWS_MAX entries.
_NODE_RAW = (Node.name, Node.role, Node.online, Node.admin_down,
             sa.cast(Node.capabilities, sa.Text), sa.cast(Node.resources, sa.Text),
             sa.cast(Node.infrastructure, sa.Text))
_Q_DC_NODES_RAW = sa.select(*_NODE_RAW).where(Node.role == NodeRole.DC)
_Q_NODES_IN_RAW = sa.select(*_NODE_RAW).where(Node.name.in_(_NAMES))
_views: dict[tuple[Any, ...], NodeView] = {}
_VIEWS_MAX = 4096


class _Row:
    """A node row with its JSON columns decoded, as node_view reads it."""

    def __init__(self, row: Any) -> None:
        self.name, self.role, self.online, self.admin_down = row[:4]
        self.capabilities, self.resources, self.infrastructure = (
            None if x is None else json.loads(x) for x in row[4:])


def _cached_view(row: Any) -> NodeView:
    key = tuple(row)
    view = _views.get(key)
    if view is None:
        if len(_views) >= _VIEWS_MAX:
            _views.clear()
        view = _views[key] = node_view(_Row(row))
    return view


def _chunks(names: list[str], size: int = 500) -> Iterable[list[str]]:
    for k in range(0, len(names), size):
        yield names[k:k + size]


def _build_users(session: Session, names: list[str], nodes: list[str],
                 now: float | None) -> Snapshot:
    conn = session.connection()
    rows: list[Any] = []
    insts: list[Any] = []
    active: dict[str, list[str] | None] = {}
    steered_rows: list[Any] = []
    for chunk in _chunks(names):
        rows += conn.execute(_Q_USERS_IN, {"names": chunk})
        steered_rows += conn.execute(_Q_STEERED_IN, {"names": chunk})
        insts += conn.execute(_Q_INSTANCES_OF, {"names": chunk})
        active.update((u, o) for u, o in conn.execute(_Q_ACTIVE_IN, {"names": chunk}))
    entries = catalogue(session)
    shared = sorted(e.name for e in entries if e.shared)
    if shared:  # a shared NF's instances serve users of any name: all of them are in scope
        seen = {i.id for i in insts}
        insts += [i for i in conn.execute(_Q_INSTANCES_OF_NF, {"names": shared})
                  if i.id not in seen]
    wanted = set(nodes)
    wanted.update(u.access_node for u in rows if u.access_node)
    wanted.update(i.node_name for i in insts)
    views = {v.name: v for v in map(_cached_view, conn.execute(_Q_DC_NODES_RAW))}
    missing = sorted(wanted - views.keys())
    for chunk in _chunks(missing):
        views.update((v.name, v) for v in map(_cached_view,
                                              conn.execute(_Q_NODES_IN_RAW, {"names": chunk})))
    steered = _steered(steered_rows)
    # The PEs above those nodes: the policy's second tier (issue 11).
    parents = {v.parent for v in views.values()}
    missing = sorted(p for p in parents if p and p not in views)
    for chunk in _chunks(missing):
        views.update((v.name, v) for v in map(_cached_view,
                                              conn.execute(_Q_NODES_IN_RAW, {"names": chunk})))
    return Snapshot(
        nodes=tuple(views[k] for k in sorted(views)),
        users=tuple(user_view(u, u.name in active, steered, active.get(u.name))
                    for u in sorted(rows, key=lambda u: u.name)),
        instances=tuple(instance_view(i) for i in sorted(insts, key=lambda i: i.id)),
        catalogue=entries, now=now if now is not None else time.time(),
    )
