"""A shared NF's tenants (NNF paper IV.E: one instance serves several users, each user's
traffic marked so the NF keeps them apart).

The switch tags each user's traffic on the shared NF's ports with their VLAN
(`pipeline.tenant_vlan`); the NF learns which VLAN is which tenant, and each tenant's own
configuration, from its config: `{"tenants": [{"user", "vlan", **that user's config of the
NF}]}`, one entry per active user (NetFATE Table II), rewritten whenever they change. The
agent sees a changed config and updates the NF (updateNF), so the tenant list follows the
steering level-triggered, as everything else the agent runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from netfate.controller.pipeline import tenant_vlan
from netfate.db.models import User, VnfInstance, VnfPackage
from netfate.errors import InvalidInput, NetfateError

log = logging.getLogger(__name__)

MAX_TENANTS = 256  # as many as the firewall's config takes (catalogue/firewall descriptor)


def tenants_config(nf: str, users: Iterable[str],
                   configs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The config of a shared `nf` instance for these active users, in name order; each
    user's own config of `nf` (`configs`: user -> their nf_config) with its VLAN. A user's
    own `tenants` key is dropped: nobody configures another tenant. Two users whose names
    hash to the same VLAN: the first in name order keeps it and the other is left out, as
    the switch leaves them out (controller/flows.py); with two entries of one VLAN the NF
    would apply one tenant's policy to the other's traffic. Pure."""
    out = []
    taken: dict[int, str] = {}
    for u in sorted(set(users))[:MAX_TENANTS]:
        vlan = tenant_vlan(u)
        if (other := taken.setdefault(vlan, u)) != u:
            log.warning("shared NF %s: tenant %s left out, VLAN %d is user %s's", nf, u,
                        vlan, other)
            continue
        own = (configs.get(u) or {}).get(nf) or {}
        if not isinstance(own, Mapping):
            own = {}
        out.append({**{k: v for k, v in own.items() if k not in ("tenants", "user", "vlan")},
                    "user": u, "vlan": vlan})
    return {"tenants": out}


_Q_SHARED = (sa.select(VnfInstance.nf_name, VnfInstance.node_name, VnfInstance.config,
                       VnfInstance.active_users, VnfPackage.descriptor)
             .join(VnfPackage, VnfPackage.sha256 == VnfInstance.bundle_sha256)
             .where(VnfInstance.id == sa.bindparam("iid")))
_Q_CONFIGS = sa.select(User.name, User.nf_config).where(User.name.in_(
    sa.bindparam("names", expanding=True)))
_SET_CONFIG = sa.update(VnfInstance).where(VnfInstance.id == sa.bindparam("iid"))


def _valid_tenants(descriptor: dict[str, Any], want: dict[str, Any],
                   editor: str | None) -> dict[str, Any]:
    """``want`` without the tenants whose entry the NF's config schema refuses: one user's
    bad config must not make the shared instance's whole config unusable (every tenant would
    lose their NF). A left-out tenant's traffic is dropped by the NF (no policy for their
    VLAN), so this fails closed. InvalidInput if ``editor``'s own entry is the bad one (their
    edit is refused, nothing changes)."""
    from netfate.descriptor import parse_descriptor

    try:
        desc = parse_descriptor(descriptor, "stored descriptor")
    except NetfateError:
        return want  # a package that cannot be parsed fails at the NF's update, as before
    keep = []
    for entry in want["tenants"]:
        try:
            desc.validate_config({"tenants": [entry]})
        except NetfateError as exc:
            if entry["user"] == editor:
                raise InvalidInput(f"user {editor}: their config of shared NF "
                                   f"{desc.name}: {exc}") from None
            log.warning("shared NF %s: tenant %s left out, their config is refused: %s",
                        desc.name, entry["user"], exc)
            continue
        keep.append(entry)
    return {"tenants": keep}


def retenant(conn: sa.Connection, iid: str, editor: str | None = None) -> str | None:
    """If `iid` is a shared NF's instance, write its config for its active users now; the
    node to tell when that changed it, else None. In Core, like lcm_records.count_users.
    A tenant whose own config the NF's schema refuses is left out (logged); InvalidInput
    if that tenant is `editor` (the user whose edit this follows)."""
    row = conn.execute(_Q_SHARED, {"iid": iid}).first()
    if row is None or not isinstance(row.descriptor, dict) \
            or row.descriptor.get("shared") is not True:
        return None
    users = list(row.active_users or [])
    configs = {n: c or {} for n, c in conn.execute(_Q_CONFIGS, {"names": users})} \
        if users else {}
    want = _valid_tenants(row.descriptor, tenants_config(row.nf_name, users, configs), editor)
    if want == (row.config or {}):
        return None
    conn.execute(_SET_CONFIG.values(config=want), {"iid": iid})
    return str(row.node_name)


_Q_USING = sa.select(VnfInstance.id, VnfInstance.active_users).where(
    VnfInstance.nf_name.in_(sa.bindparam("nfs", expanding=True)))


def retenant_user(conn: sa.Connection, user: str, nfs: Iterable[str]) -> list[str]:
    """After `user`'s config of `nfs` changed: rewrite the config of the shared instances
    of those NFs they use; the nodes to tell (tenants.retenant). InvalidInput if the NF's
    schema refuses their config (the caller's transaction then changes nothing)."""
    nfs = sorted(set(nfs))
    if not nfs:
        return []
    nodes = {node for iid, users in conn.execute(_Q_USING, {"nfs": nfs})
             if user in (users or []) and (node := retenant(conn, iid, user)) is not None}
    return sorted(nodes)
