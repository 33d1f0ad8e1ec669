"""The closed loop: an NF's notification -> the reaction policy -> lifecycle operations.

The Glasgow paper's IoT DDoS mitigation (section V.A): a flood seen by the packet inspector in
a device's chain becomes a DROP rule on that device's own edge firewall. The decision is the
reaction policy's (engine/reaction.py, pure, chosen by the `reaction_policy` setting; empty
turns the loop off); this module only reads the owner's NFs, runs the reactions as ordinary
UPDATE or INSTANTIATE operations (so they show in vnf_lcm_op_occs and the UI like any other),
and publishes a `reaction` event with its timings.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from netfate.bus.messages import Notification
from netfate.db import repo
from netfate.db.models import LcmOperation, Presence, VnfInstance
from netfate.engine.reaction import (
    Alert,
    NFView,
    PlaceNF,
    ReactionPolicy,
    UpdateNF,
    get_reaction_policy,
)
from netfate.errors import NetfateError
from netfate.orchestrator.hub import EventHub

if TYPE_CHECKING:
    from netfate.db import Database
    from netfate.orchestrator.coordinator import Coordinator

log = logging.getLogger("netfate.closed_loop")


def owner_nfs(s: Session, owner: str) -> list[NFView]:
    """The owner's NF instances that are wanted present (Table II)."""
    rows = s.query(VnfInstance).filter(VnfInstance.owner == owner,
                                       VnfInstance.desired_state == Presence.PRESENT)
    return [NFView(r.id, r.nf_name, r.node_name, r.owner, dict(r.config or {})) for r in rows]


def alert_of(n: Notification) -> Alert:
    return Alert(node=n.node, type=n.type, owner=n.owner, nf=n.nf, nf_id=n.nf_id,
                 severity=n.severity, source=n.source, detail=dict(n.detail), ts=n.ts)


class ClosedLoop:
    """Runs the reaction policy on every notification. KeyError at construction for an
    unknown policy name."""

    def __init__(self, db: Database, coordinator: Coordinator, hub: EventHub,
                 policy: str) -> None:
        self.db, self.coordinator, self.hub = db, coordinator, hub
        self.policy: ReactionPolicy = get_reaction_policy(policy)

    async def on_notification(self, n: Notification) -> list[dict[str, Any]]:
        """React to `n`; the reactions carried out, as published (each with its operation,
        its outcome and the seconds from the notification's timestamp to done)."""
        if not n.owner:
            return []
        nfs = await self.db.run(owner_nfs, n.owner)
        # The NF writes its notification itself (owner included): only one from an instance
        # of that owner on that node may change the owner's NFs, never one naming another
        # tenant.
        if not any(v.instance_id == n.nf_id and v.node == n.node for v in nfs):
            log.warning("notification %s on %s names owner %s, but its NF %r is not theirs "
                        "there: no reaction", n.type, n.node, n.owner, n.nf_id)
            return []
        done: list[dict[str, Any]] = []
        for r in self.policy.react(alert_of(n), nfs):
            try:
                if isinstance(r, UpdateNF):
                    op_id = await self.coordinator.new_op(
                        LcmOperation.UPDATE, r.instance_id,
                        {"config": r.config, "reason": r.reason})
                    ok = await self.coordinator.update(op_id, r.instance_id, r.config)
                    what = {"action": "update", "instance_id": r.instance_id}
                elif isinstance(r, PlaceNF):
                    iid = repo.instance_id_for(r.node, r.owner, r.nf)
                    op_id = await self.coordinator.new_op(
                        LcmOperation.INSTANTIATE, iid,
                        {"node": r.node, "owner": r.owner, "nf": r.nf, "config": r.config,
                         "reason": r.reason})
                    ok = await self.coordinator.instantiate(op_id, r.node, r.owner, r.nf, iid,
                                                            r.config)
                    what = {"action": "place", "instance_id": iid, "node": r.node}
                else:  # a policy returned something else: skip it, keep the loop
                    continue
            except NetfateError as exc:
                log.warning("reaction to %s from %s failed: %s", n.type, n.source, exc)
                continue
            event = {**what, "op_id": op_id, "ok": ok, "reason": r.reason,
                     "notification": {"type": n.type, "source": n.source, "node": n.node,
                                      "owner": n.owner, "ts": n.ts},
                     "seconds": round(time.time() - n.ts, 3), "policy": self.policy.name}
            log.info("reaction: %s", event)
            self.hub.publish("reaction", event)
            done.append(event)
        return done
