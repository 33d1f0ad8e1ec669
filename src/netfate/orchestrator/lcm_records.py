"""The coordinator's reads and writes, as functions of one session: each runs in one
transaction through `Database.run` (off the event loop) and returns plain data."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.db import repo
from netfate.db.models import (
    ActualState,
    LcmOperation,
    Node,
    OpState,
    Presence,
    SteeringRule,
    User,
    VnfInstance,
    VnfLcmOpOcc,
    VnfPackage,
)
from netfate.db.repo import check
from netfate.db.repo._common import _kind as constraint_kind
from netfate.db.repo.lcm import FINAL, TRANSITIONS
from netfate.errors import Conflict, InvalidInput, NotFound
from netfate.orchestrator import tenants
from netfate.orchestrator.flavour import flavour_for
from netfate.orchestrator.hop_owners import own_hops
from netfate.orchestrator.planner import InstanceFacts
from netfate.owners import is_operator_owned


def problem(title: str, detail: str, status: int = 500) -> dict[str, Any]:
    """An RFC 7807 problem body, for an operation's error."""
    return {"type": "about:blank", "title": title, "status": status, "detail": detail}


def new_ops(s: Session, specs: list[tuple[LcmOperation, str, dict[str, Any]]]) -> list[str]:
    """Operation occurrences, PROCESSING: their ids, in order. The rows repo.new_op_occ
    writes, in one Core statement for all (no ORM objects, no savepoints)."""
    t = time.time()
    ids = [str(uuid.uuid4()) for _ in specs]
    rows = [{"id": op_id, "operation": check.enum(LcmOperation, op, "operation"),
             "operation_state": OpState.PROCESSING,
             "vnf_instance_id": check.text("vnf_instance_id", iid),
             "params": check.mapping("params", params or {}), "error": None,
             "start_time": t, "state_entered_time": t, "is_cancel_pending": False}
            for op_id, (op, iid, params) in zip(ids, specs, strict=True)]
    if rows:
        s.connection().execute(sa.insert(VnfLcmOpOcc), rows)
    return ids


def not_migration_targets(s: Session, names: Iterable[str]) -> None:
    """Conflict if a migration in progress moves an NF to one of `names`: it holds its
    target id before, and while, the target is recorded."""
    targets = {str((p or {}).get("new_instance_id")): (i, src) for i, src, p in s.execute(
        sa.select(VnfLcmOpOcc.id, VnfLcmOpOcc.vnf_instance_id, VnfLcmOpOcc.params).where(
            VnfLcmOpOcc.operation == LcmOperation.MIGRATE,
            VnfLcmOpOcc.operation_state == OpState.PROCESSING))}
    for name in names:
        if name in targets:
            op_id, src = targets[name]
            raise Conflict(f"NF instance {name} is the target of the migration of {src} in "
                           f"progress ({op_id}); retry when it ends")


def claim_op(s: Session, op: LcmOperation, iid: str, params: dict[str, Any], *,
             free: Iterable[str] = (), exists: str | None = None,
             present: str | None = None, not_present: Iterable[str] = ()) -> str:
    """A direct lifecycle request's operation occurrence, PROCESSING, recorded only if it may
    still start: no operation in progress on any instance of `free`, the instance `present`
    exists and is wanted, none of `not_present` is wanted (SOL003 §5.4.1.2: one lifecycle
    operation at a time per VNF instance, 409 otherwise). Its id. The routes' checks read
    before the NF's own check of a config; this is the check again, atomic with the insert,
    so of two requests racing for one instance exactly one gets its 202.

    Atomic because the transaction serialises with every other claim: SQLite's IMMEDIATE
    transactions take the write lock first (db/session.py); on PostgreSQL a transaction-level
    advisory lock per instance id is taken before the reads. Raises Conflict, or NotFound
    when `exists` or `present` does not exist."""
    not_present = list(not_present)
    names = sorted(set(free) | {i for i in (exists, present) if i} | set(not_present))
    if s.get_bind().dialect.name == "postgresql":
        from netfate.db.advisory import key

        for name in names:  # sorted: two claims on the same pair lock in one order
            s.execute(sa.select(sa.func.pg_advisory_xact_lock(key(f"op:{name}"))))
    for name in names:
        busy = s.execute(sa.select(VnfLcmOpOcc.operation, VnfLcmOpOcc.id).where(
            VnfLcmOpOcc.vnf_instance_id == name,
            VnfLcmOpOcc.operation_state == OpState.PROCESSING).limit(1)).first()
        if busy is not None:
            raise Conflict(f"NF instance {name} has an operation in progress "
                           f"({busy.operation.value} {busy.id}); retry when it ends")
    not_migration_targets(s, names)
    if exists is not None:
        repo.get_instance(s, exists)
    if present is not None:
        inst = repo.get_instance(s, present)
        if inst.desired_state != Presence.PRESENT:
            raise Conflict(f"NF instance {present} is being terminated: cannot "
                           f"{op.value.lower()} it")
    for name in not_present:
        wanted = s.execute(sa.select(VnfInstance.owner).where(
            VnfInstance.id == name,
            VnfInstance.desired_state == Presence.PRESENT)).first()
        if wanted is not None:
            raise Conflict(f"NF instance {name} already exists")
    return new_ops(s, [(op, iid, params)])[0]


_Q_OP = sa.select(VnfLcmOpOcc.operation, VnfLcmOpOcc.operation_state,
                  VnfLcmOpOcc.vnf_instance_id).where(VnfLcmOpOcc.id == sa.bindparam("op"))
_SET_OP = sa.update(VnfLcmOpOcc).where(VnfLcmOpOcc.id == sa.bindparam("op"))


def set_op_state(s: Session, op_id: str, state: OpState,
                 error: dict[str, Any] | None = None) -> dict[str, Any]:
    """The new state (repo.set_op_state's rules, in Core statements); the operation as the
    event hub publishes it. NotFound for an unknown operation, Conflict for a move its
    state does not allow."""
    problem_ = check.mapping("error", error) if error is not None else None
    conn = s.connection()
    row = conn.execute(_Q_OP, {"op": op_id}).first()
    if row is None:
        raise NotFound(f"lifecycle operation occurrence {op_id!r} does not exist")
    cur = row.operation_state
    if state != cur and state not in TRANSITIONS[cur]:
        allowed = ", ".join(sorted(x.value for x in TRANSITIONS[cur])) or "none (final)"
        raise Conflict(f"operation {op_id} is {cur.value}: cannot move to {state.value} "
                       f"(allowed: {allowed})")
    values: dict[str, Any] = {}
    if state != cur:
        values["operation_state"] = state
        values["state_entered_time"] = time.time()
        if state in (OpState.PROCESSING, OpState.COMPLETED):
            values["error"] = None
        if state in FINAL or state == OpState.FAILED_TEMP:
            values["is_cancel_pending"] = False
    if problem_ is not None:
        values["error"] = problem_
    if values:
        conn.execute(_SET_OP.values(**values), {"op": op_id})
    return {"id": op_id, "operation": row.operation.value,
            "vnf_instance_id": row.vnf_instance_id, "state": state.value}


_SET_INSTANCE = sa.update(VnfInstance).where(VnfInstance.id == sa.bindparam("iid"))
_Q_NF_CONFIG = sa.select(User.nf_config).where(User.name == sa.bindparam("user"))
_Q_INSTANCE_KEY = sa.select(VnfInstance.node_name, VnfInstance.owner, VnfInstance.nf_name) \
    .where(VnfInstance.id == sa.bindparam("iid"))
_Q_INSTANCE_OF = sa.select(VnfInstance.id).where(
    VnfInstance.node_name == sa.bindparam("node"), VnfInstance.owner == sa.bindparam("owner"),
    VnfInstance.nf_name == sa.bindparam("nf"))
# Whether the node, the user (owner row) and the bundle exist: one statement for the three.
_Q_REFS = sa.select(
    sa.select(Node.name).where(Node.name == sa.bindparam("node")).scalar_subquery(),
    sa.select(User.name).where(User.name == sa.bindparam("owner")).scalar_subquery(),
    sa.select(VnfPackage.sha256).where(VnfPackage.sha256 == sa.bindparam("sha"))
    .scalar_subquery())


def want(s: Session, node: str, owner: str, nf: str, iid: str,
         config: dict[str, Any] | None, flavour: str | None = None,
         pinned: bool = False) -> None:
    """The instance present, from the NF's newest bundle; config None: the owner's; in
    `flavour` (the engine's choice) when the node runs it, else the resolver's
    (netfate.orchestrator.flavour); `pinned` when the operator placed it. Raises NotFound
    when the catalogue has no bundle of the NF; MissingCapability when the node runs none
    of its flavours.

    What repo.upsert_instance writes, with its checks and errors, in Core statements (7
    instead of 11, no ORM objects, no savepoint): every placement and migration runs it."""
    bundle = repo.latest_bundle_sha(s, nf)
    conn = s.connection()
    if config is None:
        # (repo.get_user's: no such user, or the operator's owner row: no configuration)
        got = None if "\x00" in owner or is_operator_owned(owner) else \
            conn.execute(_Q_NF_CONFIG, {"user": owner}).first()
        config = ((got.nf_config or {}) if got is not None else {}).get(nf, {})
    chosen = flavour_for(s, node, bundle, flavour)
    _put_instance(conn, node=node, owner=owner, nf=nf, bundle=bundle, flavour=chosen,
                  iid=iid, config=config or {}, pinned=pinned)


def _put_instance(conn: sa.Connection, *, node: str, owner: str, nf: str, bundle: str,
                  flavour: str, iid: str, config: dict[str, Any], pinned: bool) -> None:
    """repo.upsert_instance(..., desired_state=PRESENT) in Core (see want)."""
    check.name("node name", node)
    check.name("owner", owner)
    check.name("NF name", nf)
    iid = check.name("instance id", iid, check.ID_MAX)
    check.text("flavour", flavour)
    cfg = check.mapping("config", config)
    t = time.time()
    cur = conn.execute(_Q_INSTANCE_KEY, {"iid": iid}).first()
    if cur is not None and tuple(cur) != (node, owner, nf):
        raise Conflict(f"NF instance {iid!r} is {cur.nf_name!r} of {cur.owner!r} on "
                       f"{cur.node_name!r}, not {nf!r} of {owner!r} on {node!r}"
                       + ("" if (cur.owner, cur.nf_name) == (owner, nf) else
                          " (instance ids join node, owner and NF names with '-'): "
                          f"{owner!r}'s {nf!r} cannot be placed there while it exists"))
    if cur is None:
        other = conn.execute(_Q_INSTANCE_OF, {"node": node, "owner": owner, "nf": nf}).scalar()
        if other is not None:
            raise Conflict(f"{owner!r} already has {nf!r} on {node!r}: instance {other!r}")
    refs = conn.execute(_Q_REFS, {"node": node, "owner": owner, "sha": bundle}).one()
    for (what, key), found in zip((("node", node), ("user", owner), ("bundle", bundle)),
                                  refs, strict=True):
        if found is None:
            raise NotFound(f"{what} {key!r} does not exist")
    values = {"bundle_sha256": bundle, "flavour": flavour, "config": cfg,
              "desired_state": Presence.PRESENT, "pinned": bool(pinned), "updated_at": t}
    try:
        if cur is None:
            conn.execute(sa.insert(VnfInstance).values(
                id=iid, node_name=node, owner=owner, nf_name=nf, created_at=t,
                actual_state=ActualState.PENDING, active_users=[], **values))
            repo.inherit_mute(conn, iid, owner, nf, t)
        else:
            conn.execute(_SET_INSTANCE.values(**values), {"iid": iid})
    except sa.exc.IntegrityError as exc:  # (as repo's guard; the transaction rolls back)
        kind = constraint_kind(exc)
        if kind == "unique":
            raise Conflict(f"{owner!r} already has {nf!r} on {node!r}") from exc
        if kind == "fk":
            raise NotFound(f"NF instance {iid!r}: refers to a node, user or bundle that "
                           "does not exist") from exc
        raise InvalidInput(f"NF instance {iid!r}: a value breaks a constraint "
                           f"({exc.orig})") from exc
    except sa.exc.DataError as exc:
        raise InvalidInput(f"NF instance {iid!r}: a value is not valid for the database "
                           f"({exc.orig})") from exc


_Q_NODE_OF = sa.select(VnfInstance.node_name, VnfInstance.owner, VnfInstance.nf_name).where(
    VnfInstance.id == sa.bindparam("iid"))


def drop(s: Session, iid: str, owner: str | None = None, nf: str | None = None
         ) -> str | None:
    """The instance absent; its node (None if it does not exist, or, with `owner` and
    `nf`, if it is not that owner's NF `nf`: planner.Drop). What
    repo.set_instance_desired_state writes, in Core statements (no ORM load, no savepoint:
    every release runs it)."""
    if "\x00" in iid:  # (as get_or_404: no row can have it)
        return None
    conn = s.connection()
    row = conn.execute(_Q_NODE_OF, {"iid": iid}).first()
    if row is None or (owner is not None and (row.owner, row.nf_name) != (owner, nf)):
        return None
    node: str = row.node_name
    conn.execute(_SET_INSTANCE.values(desired_state=Presence.ABSENT, updated_at=time.time()),
                 {"iid": iid})
    return node


def configure(s: Session, iid: str, config: dict[str, Any]) -> str:
    """The instance's configuration; its node. Raises NotFound."""
    i = repo.get_instance(s, iid)
    repo.upsert_instance(s, node=i.node_name, owner=i.owner, nf_name=i.nf_name,
                         bundle_sha256=i.bundle_sha256, flavour=i.flavour, instance_id=iid,
                         config=config)
    return i.node_name


def instance_facts(s: Session, iid: str) -> InstanceFacts:
    """What the planner needs about an instance. Raises NotFound."""
    i = repo.get_instance(s, iid)
    descriptor = repo.bundle_descriptor(s, i.bundle_sha256)
    online = True
    with contextlib.suppress(NotFound):
        online = repo.get_node(s, i.node_name).online
    return InstanceFacts(node=i.node_name, owner=i.owner, nf=i.nf_name, config=dict(i.config),
                         exportable=bool((descriptor.get("state") or {}).get("exportable")),
                         node_online=online, flavour=i.flavour or "native")


_Q_PARAMS = sa.select(VnfLcmOpOcc.params).where(VnfLcmOpOcc.id == sa.bindparam("op"))


def complete(s: Session, op_id: str, timings: dict[str, float] | None) -> dict[str, Any]:
    """The operation COMPLETED (set_op_state), its measured `timings` (ms) first added to
    its params as repo.merge_op_params does: one transaction for both, not two. The
    timings are best effort (an unknown operation: only set_op_state's NotFound)."""
    if timings is not None:
        conn = s.connection()
        row = conn.execute(_Q_PARAMS, {"op": op_id}).first()
        if row is not None:
            conn.execute(_SET_OP.values(params={**(row.params or {}), "timings": timings}),
                         {"op": op_id})
    return set_op_state(s, op_id, OpState.COMPLETED)


_Q_FACTS = (sa.select(VnfInstance.id, VnfInstance.node_name, VnfInstance.owner,
                      VnfInstance.nf_name, VnfInstance.config, VnfInstance.bundle_sha256,
                      Node.online)
            .outerjoin(Node, Node.name == VnfInstance.node_name)
            .where(VnfInstance.id.in_(sa.bindparam("ids", expanding=True))))
_Q_EXPORTABLE = sa.select(VnfPackage.sha256, VnfPackage.descriptor).where(
    VnfPackage.sha256.in_(sa.bindparam("shas", expanding=True)))


def facts_of(s: Session, iids: Iterable[str]) -> dict[str, InstanceFacts]:
    """Facts of those of `iids` that exist (as instance_facts gives them), in two Core
    queries for all of them."""
    ids = list(dict.fromkeys(iids))
    if not ids:
        return {}
    conn = s.connection()
    rows = conn.execute(_Q_FACTS, {"ids": ids}).all()
    exportable = {sha: bool(((d or {}).get("state") or {}).get("exportable"))
                  for sha, d in conn.execute(_Q_EXPORTABLE,
                                             {"shas": sorted({r.bundle_sha256 for r in rows})})}
    return {r.id: InstanceFacts(node=r.node_name, owner=r.owner, nf=r.nf_name,
                                config=dict(r.config or {}),
                                exportable=exportable.get(r.bundle_sha256, False),
                                node_online=True if r.online is None else bool(r.online))
            for r in rows}


_Q_USER_ADDR = sa.select(User.mac, User.ip).where(User.name == sa.bindparam("user"))
_RULE_AT = sa.and_(SteeringRule.user_name == sa.bindparam("user"),
                   SteeringRule.node_name == sa.bindparam("node"))
_Q_RULE = sa.select(SteeringRule.chain, SteeringRule.mac, SteeringRule.ip,
                    SteeringRule.desired, SteeringRule.installed).where(_RULE_AT)
_SET_RULE = sa.update(SteeringRule).where(_RULE_AT)
_DELETE_RULE = sa.delete(SteeringRule).where(_RULE_AT)


def steer(s: Session, user: str, node: str, chain: list[str], mac: str | None,
          ip: str | None) -> list[str]:
    """The user's steering rule at the node (Table III), desired: as repo.set_steering
    (mac and ip default to the user's; a change marks it not installed), in Core statements
    without ORM objects or savepoints (every placement and roam runs it). NotFound for an
    unknown user or node, Conflict if the rule was added concurrently. The instances'
    active users (Table II) follow; returns the nodes of shared NFs whose tenants changed
    (their agents must be told: tenants.retenant)."""
    hops = check.str_list("chain", chain)
    conn = s.connection()
    own_hops(conn, user, hops)
    before = _chain_at(conn, user, node)
    addr = conn.execute(_Q_USER_ADDR, {"user": user}).first()
    if addr is None:
        raise NotFound(f"user {user!r} does not exist")
    mac = check.text("mac", mac if mac is not None else addr.mac, optional=True)
    ip = check.text("ip", ip if ip is not None else addr.ip, optional=True)
    key = {"user": user, "node": node}
    cur = conn.execute(_Q_RULE, key).first()
    values = {"chain": hops, "mac": mac, "ip": ip, "desired": True, "installed": False,
              "updated_at": time.time()}
    if cur is None:
        try:
            conn.execute(sa.insert(SteeringRule).values(user_name=user, node_name=node,
                                                        **values))
        except sa.exc.IntegrityError as exc:  # (the transaction is then rolled back)
            if constraint_kind(exc) == "unique":
                raise Conflict(f"a steering rule for {user!r} at {node!r} was added "
                               "concurrently") from exc
            raise NotFound(f"node {node!r} does not exist") from exc
    elif (list(cur.chain or ()), cur.mac, cur.ip, cur.desired) != (hops, mac, ip, True):
        conn.execute(_SET_RULE.values(**values), key)
    # else unchanged: stays installed
    return count_users(conn, user, before)


def unsteer(s: Session, user: str, node: str) -> list[str]:
    """Stop steering the user at the node (repo.clear_steering, in Core): an installed rule
    stays, not desired, until the controller reports it removed; one never installed goes.
    The instances' active users (Table II) follow (as steer, the nodes to tell)."""
    conn = s.connection()
    key = {"user": user, "node": node}
    cur = conn.execute(_Q_RULE, key).first()
    if cur is None or (not cur.desired and cur.installed):
        return []
    before = _chain_at(conn, user, node)
    if cur.installed:
        conn.execute(_SET_RULE.values(desired=False, updated_at=time.time()), key)
    else:
        conn.execute(_DELETE_RULE, key)
    return count_users(conn, user, before)


_Q_CHAINS_AT = sa.select(SteeringRule.chain).where(_RULE_AT, SteeringRule.desired.is_(True))
_Q_CHAINS_OF = sa.select(SteeringRule.chain).where(
    SteeringRule.user_name == sa.bindparam("user"), SteeringRule.desired.is_(True))
_Q_ACTIVE_USERS = sa.select(VnfInstance.active_users).where(
    VnfInstance.id == sa.bindparam("iid"))
_SET_ACTIVE_USERS = sa.update(VnfInstance).where(VnfInstance.id == sa.bindparam("iid"))


def _chain_at(conn: sa.Connection, user: str, node: str) -> list[str]:
    return [i for (c,) in conn.execute(_Q_CHAINS_AT, {"user": user, "node": node})
            for i in (c or ())]


def count_users(conn: sa.Connection, user: str, touched: list[str]) -> list[str]:
    """Table II's "Number of Active Users" (NetFATE): `user` is an active user of exactly
    the instances their desired steering crosses. `touched`: instances whose chains may no
    longer name the user (their steering before a change). In Core, like steer: an ORM read
    here would see the session's cached rows from before the Core writes. Returns the nodes
    of shared NFs whose tenants (and so config) changed."""
    using = {i for (c,) in conn.execute(_Q_CHAINS_OF, {"user": user}) for i in (c or ())}
    nodes: list[str] = []
    for iid in sorted(using | set(touched)):
        now = conn.execute(_Q_ACTIVE_USERS, {"iid": iid}).scalar()
        if now is None and iid not in using:
            continue
        current = list(now or [])
        want = [u for u in current if u != user] + ([user] if iid in using else [])
        if sorted(want) != sorted(current):
            conn.execute(_SET_ACTIVE_USERS.values(active_users=sorted(want),
                                                  updated_at=time.time()), {"iid": iid})
            if (node := tenants.retenant(conn, iid)) is not None:
                nodes.append(node)
    return sorted(set(nodes))


def mark_installed(s: Session, user: str, node: str, installed: bool) -> None:
    repo.mark_steering_installed(s, user=user, node=node, installed=installed)


def add_timings(s: Session, op_id: str, extra: dict[str, float]) -> None:
    """Add laps (ms) to an operation's measured `timings` (those it has are kept). In Core
    (as complete): one read and one write, no ORM object."""
    conn = s.connection()
    row = conn.execute(_Q_PARAMS, {"op": op_id}).first()
    if row is None:
        return
    params = dict(row.params or {})
    params["timings"] = {**(params.get("timings") or {}), **extra}
    conn.execute(_SET_OP.values(params=params), {"op": op_id})
