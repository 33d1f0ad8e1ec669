"""Fast re-authentication: a client whose session is still valid associates at another node
and is let in without a password, the way a roaming station re-authenticates with its PMK.

On the new node's client.associated event the orchestrator, as that node's RADIUS client
(NAS-Identifier = the node), sends an Access-Request for the session's user with the
client's MAC and a token bound to the session (backend.reauth_token). FreeRADIUS asks the
orchestrator's back end, which checks the session, the MAC and the lifetime. On Access-Accept
the user is associated at the new node, and the engine moves their NFs there.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from netfate.bus.messages import NodeEvent
from netfate.db import repo
from netfate.errors import NetfateError
from netfate.metrics import orchestrator as metrics
from netfate.orchestrator import sessions
from netfate.radius.backend import reauth_token
from netfate.radius.client import RadiusError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from netfate.orchestrator.service import Orchestrator

log = logging.getLogger("netfate.orchestrator.reauth")


def _session_of(s: Session, mac: str) -> tuple[str, str, str, str | None, float] | None:
    """The active session of a device: (user, node, session id, IP, start time)."""
    cur = repo.active_session_by_mac(s, mac)
    if cur is None:
        return None
    return cur.user_name, cur.node_name, cur.id, cur.ip, cur.started_at


async def on_associated(orch: Orchestrator, ev: NodeEvent) -> None:
    assert orch.db is not None and orch.coordinator is not None
    mac = str(ev.data.get("mac", "")).lower()
    if not mac or orch.settings.reauth_lifetime <= 0 or orch.radius_settings is None:
        return
    t0 = time.perf_counter()
    cur = await orch.db.read(_session_of, mac)  # no write lock to queue for
    if cur is None:
        return  # unknown device: the captive portal
    user, node, sid, ip, started = cur
    if node == ev.node:
        return  # back on the same node: nothing moves
    if time.time() - started > orch.settings.reauth_lifetime:
        log.info("%s at %s: session too old for fast re-authentication", user, ev.node)
        return
    token = reauth_token(orch.radius_settings.api_key, sid, mac)
    client = orch.radius_client()
    try:
        result = await client.authenticate_async(user, token, mac=mac, nas_id=ev.node)
    except RadiusError as exc:
        log.warning("fast re-authentication of %s at %s failed: %s", user, ev.node, exc)
        failed = {"user": user, "node": ev.node, "ok": False, "error": str(exc)}
        metrics.handover(failed)
        orch.hub.publish("reauth", failed)
        return
    t_auth = time.perf_counter() - t0
    record = {"user": user, "from": node, "node": ev.node, "mac": mac,
              "ok": result.accepted, "reply": result.reply_message,
              "radius_ms": round(t_auth * 1000, 2), "associated_ts": ev.ts,
              "event_delay_ms": round((time.time() - t_auth - ev.ts) * 1000, 2),
              "ts": time.time()}
    orch.handovers.append(record)
    orch.hub.publish("reauth", record)
    if not result.accepted:
        metrics.handover(record)
        log.info("fast re-authentication of %s at %s refused: %s", user, ev.node,
                 result.reply_message)
        return
    log.info("%s re-authenticated at %s in %.1f ms (from %s)", user, ev.node, t_auth * 1000,
             node)
    try:
        t1 = time.perf_counter()
        laps: dict[str, float] = {}
        await sessions.associate(orch.coordinator, orch.db, user, ev.node, mac,
                                 result.framed_ip or ip, laps=laps)
        # the plan runs on; the anchor is in place (make-before-break)
        record["anchored_ms"] = round((time.perf_counter() - t1) * 1000, 2)
        record.update(laps)  # of which planning, and the anchor's two controller rounds
        record["served_ts"] = time.time()
    except NetfateError as exc:
        log.warning("associating %s at %s failed: %s", user, ev.node, exc)
    metrics.handover(record)
