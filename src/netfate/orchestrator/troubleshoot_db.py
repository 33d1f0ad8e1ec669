"""The troubleshooting operation's database reads and writes, one transaction each, run off
the event loop (orchestrator/troubleshoot.py): its points, the user's NFs and address, the
operator's owner row, and its probes' TS rules (NNF paper, Table I)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.db import repo
from netfate.db.models import Node, NodeRole, Presence, TroubleshootOcc, User, VnfInstance
from netfate.errors import InvalidInput
from netfate.orchestrator.troubleshoot_target import Target
from netfate.owners import OPERATOR


def ensure_operator(s: Session) -> None:
    """The operator's owner row (VnfInstance.owner is a user's name): no password anyone can
    log in with, never listed as a user (repo.list_users, snapshot)."""
    if s.get(User, OPERATOR) is None:
        s.add(User(name=OPERATOR, password_hash="!", required_nfs=[], nf_config={}))
        s.flush()


def plan_points(s: Session, t: Target) -> tuple[list[tuple[str, str, bool]], str | None,
                                                 str | None]:
    """([(node, role, on_path)], the user's address, the user's access node). InvalidInput
    for an unknown user or one not attached, or no node to probe from."""
    nodes = {n.name: n for n in s.scalars(sa.select(Node).order_by(Node.name))}
    up = [n for n in nodes.values() if n.online and not n.admin_down]
    pts: list[tuple[str, str, bool]] = []
    user_ip: str | None = None
    cpe: str | None = None
    if t.user is not None:
        u = s.get(User, t.user)
        if u is None or t.user == OPERATOR:
            raise InvalidInput(f"user {t.user!r} does not exist")
        if not u.access_node:
            raise InvalidInput(f"user {t.user!r} is attached to no node: nowhere to ask from")
        cpe, user_ip = u.access_node, u.ip
        pts.append((cpe, "cpe", True))
        parent = ((nodes[cpe].infrastructure or {}).get("parent")
                  if cpe in nodes else None)
        pes = [parent] if isinstance(parent, str) and parent in nodes else \
            [n.name for n in up if n.role == NodeRole.PE]
        if pes:
            pts.append((pes[0], "pe", True))
    else:
        pts += [(n.name, "pe", True) for n in up if n.role == NodeRole.PE][:1]
    dcs = [n.name for n in up if n.role == NodeRole.DC and n.name not in {p[0] for p in pts}]
    if dcs:
        pts.append((dcs[0], "dc", False))
    if not pts:
        raise InvalidInput("no node online to probe from")
    return pts, user_ip, cpe


def user_mac(s: Session, user: str) -> str | None:
    u = s.get(User, user)
    return u.mac if u is not None else None


def user_instances(s: Session, user: str, node: str) -> list[tuple[str, str, dict[str, Any]]]:
    """The user's own instances wanted on a node: (id, nf, config)."""
    q = (sa.select(VnfInstance.id, VnfInstance.nf_name, VnfInstance.config)
         .where(VnfInstance.owner == user, VnfInstance.node_name == node,
                VnfInstance.desired_state == Presence.PRESENT)
         .order_by(VnfInstance.id))
    return [(r.id, r.nf_name, dict(r.config or {})) for r in s.execute(q)]


def instance_exists(s: Session, iid: str) -> bool:
    return s.get(VnfInstance, iid) is not None


def taken_addresses(s: Session) -> set[str]:
    """Every address a user holds (their stable one): never a probe's."""
    return {ip for ip in s.scalars(sa.select(User.ip).where(User.ip.is_not(None))) if ip}


def put_rules(s: Session, rules: Mapping[str, list[dict[str, Any]]]) -> None:
    """The probes' TS rules, by node, in one transaction (all or none). The repository's
    errors (NotFound: a node gone; InvalidInput: a rule the model refuses)."""
    for node, rs in rules.items():
        repo.put_ts_rules(s, node, rs)


def delete_rules(s: Session, ids: Mapping[str, list[str]]) -> int:
    """Remove the probes' TS rules, by node (a node gone: nothing to remove there); how many
    there were."""
    n = 0
    for node, rids in ids.items():
        if s.get(Node, node) is not None:
            n += repo.delete_ts_rules(s, node, rids)
    return n


KEEP_RECORDS = 200  # questions kept in the database, newest first


def save_occ(s: Session, doc: dict[str, Any]) -> None:
    """Record an occurrence as the API shows it (`TsOccurrence.as_dict`), created or
    replaced; the oldest beyond KEEP_RECORDS finished ones are dropped."""
    row = s.get(TroubleshootOcc, doc["id"])
    if row is None:
        row = TroubleshootOcc(id=doc["id"])
        s.add(row)
    row.state = doc["operation_state"]
    row.start_time = float(doc["start_time"])
    row.end_time = doc.get("end_time")
    row.doc = doc
    s.flush()
    old = list(s.scalars(sa.select(TroubleshootOcc.id)
                         .where(TroubleshootOcc.state != "PROCESSING")
                         .order_by(TroubleshootOcc.start_time.desc())
                         .offset(KEEP_RECORDS)))
    if old:
        s.execute(sa.delete(TroubleshootOcc).where(TroubleshootOcc.id.in_(old)))


def get_occ(s: Session, op_id: str) -> dict[str, Any] | None:
    row = s.get(TroubleshootOcc, op_id)
    return dict(row.doc) if row is not None else None


def list_occs(s: Session, limit: int = KEEP_RECORDS) -> list[dict[str, Any]]:
    """The recorded occurrences, oldest first (the newest `limit`)."""
    rows = list(s.scalars(sa.select(TroubleshootOcc)
                          .order_by(TroubleshootOcc.start_time.desc()).limit(limit)))
    return [dict(r.doc) for r in reversed(rows)]
