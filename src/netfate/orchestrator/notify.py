"""SOL003-style lifecycle notifications: each operation state change is POSTed to the
subscriptions' callback URIs (best effort, bounded time, never blocking operations)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.counters import LoopFailures
from netfate.db import Database
from netfate.db.models import Subscription
from netfate.orchestrator.api.schemas import DEFAULT_CALLBACK_NETWORKS, callback_allowed
from netfate.orchestrator.hub import EventHub

log = logging.getLogger("netfate.notify")


FILTER_KEYS = (("operationTypes", "operation"), ("operationStates", "state"),
               ("vnfInstanceIds", "vnf_instance_id"))


def matches(flt: dict[str, Any], op: dict[str, Any]) -> bool:
    """A subscription's filter: optional lists of operation types, states and instance ids
    (api.schemas.SubscriptionFilter). A filter stored before the API checked them whose
    value is no list matches nothing (it once ended the dispatcher: `state not in 5`), and
    an unknown key matches nothing either, rather than everything."""
    if any(k not in dict(FILTER_KEYS) for k in flt):
        return False
    for key, field in FILTER_KEYS:
        wanted = flt.get(key)
        if wanted is None or wanted == []:  # [] was stored for "any" before the API's check
            continue
        if not isinstance(wanted, list) or op.get(field) not in wanted:
            return False
    return True


_Q_SUBSCRIPTIONS = sa.select(Subscription.id, Subscription.callback_uri,
                             Subscription.filter).order_by(Subscription.created_at)


def _subscriptions(s: Session) -> list[tuple[str, str, dict[str, Any]]]:
    """repo.list_subscriptions as plain rows (Core: read for every batch of operation
    events, several per roam)."""
    return [(i, uri, dict(f or {})) for i, uri, f in s.connection().execute(_Q_SUBSCRIPTIONS)]


async def dispatch(hub: EventHub, db: Database, timeout: float = 3.0,
                   allowed: Iterable[str] = DEFAULT_CALLBACK_NETWORKS) -> None:
    """Post each operation event to the subscriptions it matches whose callback host is in
    ``allowed`` (the callback_networks setting)."""
    q = hub.subscribe()
    failures = LoopFailures("lifecycle-notify", log)
    async with httpx.AsyncClient(timeout=timeout) as client:
        try:
            while True:
                # The events queued meanwhile too, against one read of the subscriptions
                # (one read per batch, not per event: at hundreds of operations a second).
                batch = [await q.get()]
                while not q.empty():
                    batch.append(q.get_nowait())
                ops = [ev for ev in batch if ev["event"] == "op"]
                if not ops:
                    continue
                try:
                    subs = await db.read(_subscriptions)
                except Exception as exc:  # those events lost, not the dispatcher
                    failures.failed(f"reading the subscriptions for {len(ops)} operation "
                                    f"events", exc)
                    continue
                for ev, (sub_id, uri, flt) in ((e, x) for e in ops for x in subs):
                    op = ev["data"]
                    try:
                        host = urlsplit(uri).hostname or ""
                        wanted = matches(flt, op) and callback_allowed(host, allowed)
                    except Exception as exc:  # one bad row must not end every delivery
                        failures.failed(f"matching subscription {sub_id}", exc)
                        continue
                    if not wanted:
                        continue
                    body = {
                        "id": str(uuid.uuid4()),
                        "notificationType": "VnfLcmOperationOccurrenceNotification",
                        "subscriptionId": sub_id,
                        "timeStamp": ev["ts"],
                        "operationState": op.get("state"),
                        "operation": op.get("operation"),
                        "vnfInstanceId": op.get("vnf_instance_id"),
                        "vnfLcmOpOccId": op.get("id"),
                    }
                    try:
                        await client.post(uri, json=body)
                        failures.ok()
                    except (httpx.HTTPError, httpx.InvalidURL) as exc:
                        # InvalidURL is no HTTPError: a URI the API let through before it
                        # refused control characters would otherwise end the dispatcher.
                        # Without the operation's id, so a callback that stays down is
                        # one line a minute (LoopFailures), not a traceback per operation.
                        failures.failed(f"notifying subscription {sub_id} at {uri}", exc,
                                        trace=False)
        except asyncio.CancelledError:
            hub.unsubscribe(q)
            raise
