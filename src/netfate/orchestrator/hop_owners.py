"""Whose NFs a user's steering may cross: a check of the steering's writes."""

from __future__ import annotations

import sqlalchemy as sa

from netfate.db.models import VnfInstance, VnfPackage
from netfate.errors import Conflict
from netfate.owners import is_operator_owned

_Q_HOP_OWNERS = sa.select(VnfInstance.id, VnfInstance.owner, VnfInstance.nf_name,
                          VnfInstance.bundle_sha256).where(
    VnfInstance.id.in_(sa.bindparam("ids", expanding=True)))
_Q_SHARED = sa.select(VnfPackage.descriptor).where(VnfPackage.sha256 == sa.bindparam("sha"))


def own_hops(conn: sa.Connection, user: str, hops: list[str]) -> None:
    """Conflict unless each NF instance of the chain that exists is the user's, the
    operator's (a probe in their path) or of a shared NF (its other users join it): a
    user is never steered through another user's NF. Their names can join to the same
    instance id (owner 'm-rate' with NF 'limiter', owner 'm' with NF 'rate-limiter'):
    the plan's placement was refused for it, and its steering is refused here (probe of
    2026-12-06: the user was steered through the other user's NF)."""
    if not hops:
        return
    for iid, owner, nf, sha in conn.execute(_Q_HOP_OWNERS, {"ids": sorted(set(hops))}):
        if owner == user or is_operator_owned(owner):
            continue
        desc = conn.execute(_Q_SHARED, {"sha": sha}).scalar()
        if isinstance(desc, dict) and desc.get("shared") is True:
            continue
        raise Conflict(f"NF instance {iid!r} is {owner!r}'s {nf!r}, not {user!r}'s: "
                       f"{user!r} is not steered through it")
