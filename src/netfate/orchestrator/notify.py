"""SOL003-style lifecycle notifications: each operation state change is POSTed to the
subscriptions' callback URIs (best effort, bounded time, never blocking operations, and
each subscriber apart from the others)."""

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


# Notifications waiting for one subscriber: past this, its newest are dropped (counted and
# logged), so a subscriber that never answers holds memory bounded, and nobody else up.
BACKLOG = 1000


class Deliveries:
    """One queue and one worker per subscription: each subscriber gets its notifications
    in order, one POST at a time, and one that is slow or never answers delays only its
    own (they were sent one after another for all subscribers, with a 3 s timeout each:
    three silent subscribers held everyone else's 9 s per event, probe of 2026-12-05)."""

    def __init__(self, client: httpx.AsyncClient, failures: LoopFailures,
                 backlog: int = BACKLOG) -> None:
        self.client = client
        self.failures = failures
        self.backlog = backlog
        self._workers: dict[str, tuple[asyncio.Queue[tuple[str, dict[str, Any]]],
                                       asyncio.Task[None]]] = {}

    def put(self, sub_id: str, uri: str, body: dict[str, Any]) -> None:
        worker = self._workers.get(sub_id)
        if worker is None or worker[1].done():
            q: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(self.backlog)
            worker = self._workers[sub_id] = (q, asyncio.create_task(self._run(sub_id, q)))
        try:
            worker[0].put_nowait((uri, body))
        except asyncio.QueueFull as exc:
            self.failures.failed(f"subscription {sub_id}: {self.backlog} notifications "
                                 "waiting; this one dropped", exc, trace=False)

    def retire(self, live: Iterable[str]) -> None:
        """Stop the workers of subscriptions that are gone (what they had waiting too)."""
        keep = set(live)
        for sub_id in [s for s in self._workers if s not in keep]:
            self._workers.pop(sub_id)[1].cancel()

    def close(self) -> None:
        self.retire(())

    async def _run(self, sub_id: str, q: asyncio.Queue[tuple[str, dict[str, Any]]]) -> None:
        while True:
            uri, body = await q.get()
            try:
                await self.client.post(uri, json=body)
                self.failures.ok()
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                # InvalidURL is no HTTPError: a URI the API let through before it refused
                # control characters would otherwise end the worker. Without the
                # operation's id, so a callback that stays down is one line a minute
                # (LoopFailures), not a traceback per operation.
                self.failures.failed(f"notifying subscription {sub_id} at {uri}", exc,
                                     trace=False)


def _body(sub_id: str, ev: dict[str, Any]) -> dict[str, Any]:
    op = ev["data"]
    return {
        "id": str(uuid.uuid4()),
        "notificationType": "VnfLcmOperationOccurrenceNotification",
        "subscriptionId": sub_id,
        "timeStamp": ev["ts"],
        "operationState": op.get("state"),
        "operation": op.get("operation"),
        "vnfInstanceId": op.get("vnf_instance_id"),
        "vnfLcmOpOccId": op.get("id"),
    }


async def dispatch(hub: EventHub, db: Database, timeout: float = 3.0,
                   allowed: Iterable[str] = DEFAULT_CALLBACK_NETWORKS) -> None:
    """Post each operation event to the subscriptions it matches whose callback host is in
    ``allowed`` (the callback_networks setting), each subscriber through its own queue
    (Deliveries)."""
    q = hub.subscribe()
    failures = LoopFailures("lifecycle-notify", log)
    async with httpx.AsyncClient(timeout=timeout) as client:
        deliveries = Deliveries(client, failures)
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
                deliveries.retire(sub_id for sub_id, _, _ in subs)
                for ev, (sub_id, uri, flt) in ((e, x) for e in ops for x in subs):
                    try:
                        host = urlsplit(uri).hostname or ""
                        wanted = matches(flt, ev["data"]) and callback_allowed(host, allowed)
                    except Exception as exc:  # one bad row must not end every delivery
                        failures.failed(f"matching subscription {sub_id}", exc)
                        continue
                    if wanted:
                        deliveries.put(sub_id, uri, _body(sub_id, ev))
        finally:
            deliveries.close()
            hub.unsubscribe(q)
