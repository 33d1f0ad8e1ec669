"""NF notifications (list, acknowledge, mute per NF, delete), subscriptions, and the event
stream (server-sent events) for the UI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from netfate.db import repo
from netfate.db.repo.lcm import DuplicateSubscription
from netfate.errors import InvalidInput
from netfate.orchestrator.api import paging
from netfate.orchestrator.api.deps import all_rows, db, one_row, orch
from netfate.orchestrator.api.schemas import (
    IID,
    IidFilter,
    NodeFilter,
    OwnerFilter,
    SubscriptionCreate,
    callback_refusal,
)

router = APIRouter()

# Notification ids are INTEGER columns: 32-bit on PostgreSQL, 64-bit on SQLite. A larger id
# would make the driver fail (a 500); it is refused here with a 422 instead.
# Written as the API writes it: digits, no leading zero, sign, space or fraction (an int
# path parameter took "01", "+1", " 1" and "1.0" for 1: probe of 2026-12-06).
NID = Path(pattern=r"^[1-9][0-9]{0,9}$", description="the notification's id",
           examples=["1"])


def nid_of(nid: str) -> int:
    n = int(nid)
    if n > 2**31 - 1:  # PostgreSQL's INTEGER
        raise InvalidInput(f"nid: notification id {nid} is past the largest, {2**31 - 1}")
    return n


@router.get("/notifications", summary="NF notifications, newest first, in pages (a Link "
                                      "header rel=\"next\" when there are more)")
def list_notifications(request: Request, response: Response,
                       nf_instance_id: IidFilter = None,
                       node: NodeFilter = None, acknowledged: bool | None = None,
                       type: Annotated[str | None, Query(pattern=r"^[\x21-\x7e]{1,64}$")] = None,
                       owner: OwnerFilter = None,
                       marker: paging.Marker = None) -> list[dict[str, Any]]:
    before = paging.decode(marker, (float, int))
    rows = all_rows(request, lambda s: repo.list_notifications(
        s, nf_instance_id=nf_instance_id, node=node, acknowledged=acknowledged, type=type,
        owner=owner, before=before, limit=paging.PAGE_SIZE + 1))
    return paging.page(request, response, rows, lambda r: (r["ts"], r["id"]))


@router.post("/notifications/{nid}/ack")
def ack(request: Request, nid: str = NID) -> dict[str, Any]:
    n = nid_of(nid)
    return one_row(request, lambda s: repo.ack_notification(s, n))


# 204 with response_class=Response: no body and no Content-Type (RFC 9110 §15.3.5), where
# FastAPI's default JSONResponse sent "application/json" with it.
@router.delete("/notifications/{nid}", status_code=204, response_class=Response)
def delete(request: Request, nid: str = NID) -> None:
    n = nid_of(nid)
    with db(request).session() as s:
        repo.delete_notification(s, n)


@router.put("/vnf_instances/{iid}/mute", status_code=204, response_class=Response,
            summary="Drop this NF's notifications from now on")
def mute(request: Request, iid: str = IID) -> None:
    with db(request).session() as s:
        repo.get_instance(s, iid)  # an unknown NF instance is a 404, not a silent no-op
        repo.mute(s, iid)


@router.delete("/vnf_instances/{iid}/mute", status_code=204, response_class=Response)
def unmute(request: Request, iid: str = IID) -> None:
    with db(request).session() as s:
        if not repo.unmute(s, iid):
            repo.get_instance(s, iid)  # neither muted nor known: 404


SID = Path(pattern=r"^[\x21-\x7e]{1,64}$", description="the subscription's id")


@router.post("/subscriptions", status_code=201, response_model=None,
             responses={303: {"description": "a subscription with the same callbackUri and "
                                             "filter exists (Location)"}})
def subscribe(request: Request, response: Response, body: SubscriptionCreate
              ) -> dict[str, Any] | Response:
    service = orch(request)
    settings = service.settings
    own = [(settings.host, settings.port)]
    # Each member of a cluster, or the embedded server's (the settings name no URL then:
    # its port, 14481 in a probe of 2026-12-05, was taken as a callback).
    nats_url = service.nats_url
    if nats_url:
        own += [(u.hostname or "", u.port or 4222) for u in
                (urlsplit(x.strip()) for x in nats_url.split(",")) if u.hostname]
    refusal = callback_refusal(body.callbackUri, settings.callback_networks, own)
    if refusal:
        raise InvalidInput(refusal)
    try:
        made = one_row(
            request, lambda s: repo.add_subscription(
                s, body.callbackUri, filter=body.filter.model_dump(exclude_none=True))
        )
        # SOL 013 §5.3 / RFC 9110 §15.3.2: where the new subscription is
        response.headers["Location"] = request.url_for("subscription", sid=made["id"]).path
        return made
    except DuplicateSubscription as dup:
        # ETSI GS NFV-SOL 013 §5.3: the existing one, by 303 See Other (nothing created).
        return Response(status_code=303, headers={
            "Location": f"{request.url_for('subscription', sid=dup.existing).path}"})


@router.get("/subscriptions")
def subscriptions(request: Request) -> list[dict[str, Any]]:
    return all_rows(request, repo.list_subscriptions)


@router.get("/subscriptions/{sid}", name="subscription")
def subscription(request: Request, sid: str = SID) -> dict[str, Any]:
    return one_row(request, lambda s: repo.get_subscription(s, sid))


@router.delete("/subscriptions/{sid}", status_code=204, response_class=Response)
def unsubscribe(request: Request, sid: str = SID) -> None:
    with db(request).session() as s:
        repo.delete_subscription(s, sid)


@router.get("/events", summary="Server-sent events: ops, plans, nodes, notifications",
            response_class=StreamingResponse)
async def events(request: Request) -> StreamingResponse:
    hub = orch(request).hub
    q = hub.subscribe()

    async def stream() -> AsyncIterator[str]:
        try:
            yield ": netfate events\n\n"
            while not await request.is_disconnected():
                try:
                    ev = await asyncio.wait_for(q.get(), 15)
                    yield hub.format(ev)
                except TimeoutError:
                    yield ": keep-alive\n\n"
        finally:
            hub.unsubscribe(q)

    return StreamingResponse(stream(), media_type="text/event-stream")
