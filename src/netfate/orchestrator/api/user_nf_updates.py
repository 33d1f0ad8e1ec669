"""A user's edited NF configuration reaching the NFs they have running: an UPDATE
lifecycle operation (SOL003 "modify") per NF of theirs whose config is no longer theirs.

Before, `PATCH /users/{name}` with a new `nf_config` changed only the user's record: a
logged-in user's firewall kept its old rules until their next login (probe of 2026-12-06).
A shared NF gets its tenants' configs elsewhere (tenants.retenant)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.db.models import LcmOperation, Presence, VnfInstance, VnfPackage
from netfate.errors import Conflict, NotFound
from netfate.orchestrator.api.background import run_op
from netfate.orchestrator.coordinator import Coordinator

_Q_OWN = (sa.select(VnfInstance.id, VnfInstance.nf_name, VnfInstance.config,
                    VnfPackage.descriptor)
          .outerjoin(VnfPackage, VnfPackage.sha256 == VnfInstance.bundle_sha256)
          .where(VnfInstance.owner == sa.bindparam("user"),
                 VnfInstance.desired_state == Presence.PRESENT)
          .order_by(VnfInstance.id))


def stale_configs(s: Session, user: str, nf_config: dict[str, Any]
                  ) -> list[tuple[str, dict[str, Any]]]:
    """(instance id, the config it should have) of each of `user`'s wanted, non-shared NF
    instances whose config differs from `nf_config`'s entry for its NF ({} without one:
    what a placement gives it, lcm_records.want)."""
    out = []
    for iid, nf, config, desc in s.connection().execute(_Q_OWN, {"user": user}):
        if isinstance(desc, dict) and desc.get("shared") is True:
            continue
        want = nf_config.get(nf) or {}
        if want != (config or {}):
            out.append((iid, dict(want)))
    return out


async def update_running(c: Coordinator, user: str, nf_config: dict[str, Any]) -> list[str]:
    """Start an UPDATE of each of `user`'s NFs whose config `nf_config` changed; their
    operation occurrences' ids (each runs in the background as the user's plan; one whose
    NF is busy with another operation is left for the next login: Conflict is skipped)."""
    ops = []
    for iid, config in await c.db.read(stale_configs, user, nf_config):
        try:
            op_id = await c.new_op(LcmOperation.UPDATE, iid, {"config": config}, present=iid)
        except (Conflict, NotFound):
            continue
        run_op(c, op_id, c.update(op_id, iid, config), user)
        ops.append(op_id)
    return ops
