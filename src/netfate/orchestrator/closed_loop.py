"""The closed loop: an NF's notification -> the reaction policy -> lifecycle operations.

The Glasgow paper's IoT DDoS mitigation (section V.A): a flood seen by the packet inspector in
a device's chain becomes a DROP rule on that device's own edge firewall. The decision is the
reaction policy's (engine/reaction.py, pure, chosen by the `reaction_policy` setting; empty
turns the loop off); this module only reads the owner's NFs, runs the reactions as ordinary
UPDATE or INSTANTIATE operations (so they show in vnf_lcm_op_occs and the UI like any other),
and publishes a `reaction` event with its timings.
"""

from __future__ import annotations

import asyncio
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
    Reaction,
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
# How long a first notification waits for others before its reactions start: an agent
# forwards what its NFs queued together (several devices flooding at once) within a few ms,
# and reactions that start together have their configs in the database before the node's
# first push reads it, so one push (one agent command) carries them all.
GATHER_S = 0.05


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
    unknown policy name.

    One owner's notifications are handled in order, and batched: those that arrive within
    `gather_s` of the first, or while a reaction of the owner's is being carried out, are
    folded into one batch, whose
    reactions on the same NF become one operation (two flooding devices behind one firewall:
    one update with both DROP rules). Without this, two updates of one firewall would each
    start from the config the database held before either, and the second would drop the
    first one's rule. Different owners' reactions run side by side."""

    def __init__(self, db: Database, coordinator: Coordinator, hub: EventHub,
                 policy: str, gather_s: float = GATHER_S) -> None:
        self.db, self.coordinator, self.hub = db, coordinator, hub
        self.gather_s = gather_s
        self.policy: ReactionPolicy = get_reaction_policy(policy)
        self._pending: dict[str, list[Notification]] = {}  # owner -> not yet handled
        self._busy: set[str] = set()  # owners with a batch being handled

    async def on_notification(self, n: Notification) -> list[dict[str, Any]]:
        """React to `n` (and to the owner's notifications queued meanwhile); the reactions
        carried out, as published (each with its operation, its outcome and the seconds
        from the notification's timestamp to done). Empty when `n` joined a batch already
        in progress: that batch's handler carries it out."""
        if not n.owner:
            return []
        owner = n.owner
        self._pending.setdefault(owner, []).append(n)
        if owner in self._busy:
            return []
        self._busy.add(owner)
        done: list[dict[str, Any]] = []
        try:
            await asyncio.sleep(self.gather_s)
            while batch := self._pending.pop(owner, []):
                done += await self._react(owner, batch)
        finally:
            self._busy.discard(owner)
        return done

    async def _react(self, owner: str, batch: list[Notification]) -> list[dict[str, Any]]:
        nfs = await self.db.run(owner_nfs, owner)
        # The NF writes its notification itself (owner included): only one from an instance
        # of that owner on that node may change the owner's NFs, never one naming another
        # tenant.
        mine = []
        for n in batch:
            if any(v.instance_id == n.nf_id and v.node == n.node for v in nfs):
                mine.append(n)
            else:
                log.warning("notification %s on %s names owner %s, but its NF %r is not "
                            "theirs there: no reaction", n.type, n.node, n.owner, n.nf_id)
        done: list[dict[str, Any]] = []
        for r, notes in fold(self.policy, [alert_of(n) for n in mine], nfs, mine):
            event = await self._carry_out(r, notes)
            if event is not None:
                done.append(event)
        return done

    async def _carry_out(self, r: Reaction, notes: list[Notification]
                         ) -> dict[str, Any] | None:
        n = notes[0]
        try:
            if isinstance(r, UpdateNF):
                op_id = await self.coordinator.new_op(
                    LcmOperation.UPDATE, r.instance_id, {"config": r.config, "reason": r.reason})
                ok = await self.coordinator.update(op_id, r.instance_id, r.config)
                what: dict[str, Any] = {"action": "update", "instance_id": r.instance_id}
            else:
                iid = repo.instance_id_for(r.node, r.owner, r.nf)
                op_id = await self.coordinator.new_op(
                    LcmOperation.INSTANTIATE, iid,
                    {"node": r.node, "owner": r.owner, "nf": r.nf, "config": r.config,
                     "reason": r.reason})
                ok = await self.coordinator.instantiate(op_id, r.node, r.owner, r.nf, iid,
                                                        r.config)
                what = {"action": "place", "instance_id": iid, "node": r.node}
        except NetfateError as exc:
            log.warning("reaction to %s from %s failed: %s", n.type,
                        [m.source for m in notes], exc)
            return None
        event = {**what, "op_id": op_id, "ok": ok, "reason": r.reason,
                 "notification": {"type": n.type, "source": n.source, "node": n.node,
                                  "owner": n.owner, "ts": n.ts},
                 "sources": [m.source for m in notes],
                 "seconds": round(time.time() - min(m.ts for m in notes), 3),
                 "policy": self.policy.name}
        log.info("reaction: %s", event)
        self.hub.publish("reaction", event)
        return event


def fold(policy: ReactionPolicy, alerts: list[Alert], nfs: list[NFView],
         notes: list[Notification]) -> list[tuple[Reaction, list[Notification]]]:
    """The policy's reactions to `alerts` (in order, each seeing the NFs as the earlier
    ones left them), merged so that each NF gets one operation: its last config, the
    reasons joined, with the notifications that led to it. Pure."""
    view = {v.instance_id: v for v in nfs}
    out: dict[str, tuple[Reaction, list[Notification]]] = {}  # instance id -> reaction
    for alert, note in zip(alerts, notes, strict=True):
        for r in policy.react(alert, list(view.values())):
            if isinstance(r, UpdateNF):
                key, cfg = r.instance_id, r.config
                old = view.get(key)
                if old is not None:
                    view[key] = NFView(old.instance_id, old.nf, old.node, old.owner, cfg)
            elif isinstance(r, PlaceNF):
                key, cfg = repo.instance_id_for(r.node, r.owner, r.nf), r.config
                # later alerts see it as placed, and update it (one INSTANTIATE in the end)
                view[key] = NFView(key, r.nf, r.node, r.owner, cfg)
            else:  # a policy returned something else: skip it, keep the loop
                continue
            prev = out.get(key)
            if prev is None:
                out[key] = (r, [note])
                continue
            first, seen = prev
            reason = "; ".join(dict.fromkeys([first.reason, r.reason]))
            merged: Reaction = (PlaceNF(first.owner, first.node, first.nf, cfg, reason)
                                if isinstance(first, PlaceNF)
                                else UpdateNF(first.instance_id, cfg, reason))
            out[key] = (merged, seen if note in seen else [*seen, note])
    return list(out.values())
