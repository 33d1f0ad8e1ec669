"""What an operator does from the UI: POST actions that call what the REST API's routes
call, and answer with a one-line outcome for the page's message area (an error is a
message too, never a 5xx). The gate has checked the session and its CSRF token.

Create a user; add or remove an NF in a user's chain; end a user's session; migrate an NF
to a node; acknowledge, delete or mute notifications; mark a node down or up; ask where a
user's traffic stops (troubleshooting).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from netfate.db import repo
from netfate.errors import InvalidInput, NetfateError
from netfate.orchestrator import sessions
from netfate.orchestrator.api import (
    routes_instances,
    routes_nodes_users,
    routes_notifications,
    routes_troubleshoot,
)
from netfate.orchestrator.api.deps import coord, db
from netfate.orchestrator.api.nf_configs import check_required_configs
from netfate.orchestrator.api.routes_troubleshoot import TroubleshootBody
from netfate.orchestrator.api.schemas import MigrateBody, NodePatch, UserCreate
from netfate.orchestrator.ui.pages import form

router = APIRouter(prefix="/ui", include_in_schema=False)
log = logging.getLogger("netfate.ui")


MAX_MESSAGE = 400  # characters of a refusal shown in the console


def _say(text: str, ok: bool = True) -> HTMLResponse:
    cls = "ok" if ok else "err"
    # After a change the page's view asks for itself again at once (page.html's trigger).
    headers = {"HX-Trigger": "netfate-refresh"} if ok else None
    return HTMLResponse(f'<div class="flash {cls}" role="status">{html.escape(text)}</div>',
                        headers=headers)


async def _do(what: Callable[[], Awaitable[str]]) -> HTMLResponse:
    """Run an action; its outcome, or why it failed, as the message."""
    try:
        return _say(await what())
    except (NetfateError, ValidationError, ValueError) as exc:
        msg = str(exc)
        if isinstance(exc, ValidationError):
            msg = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}"
                            for e in exc.errors())
        if len(msg) > MAX_MESSAGE:  # it may quote the input back (5,000 characters of it)
            msg = msg[:MAX_MESSAGE] + f"… ({len(msg)} characters)"
        return _say(f"refused: {msg}", ok=False)


def _names(raw: str) -> list[str]:
    return [x.strip() for x in raw.replace(",", " ").split() if x.strip()]


@router.post("/users", response_class=HTMLResponse)
async def create_user(request: Request) -> HTMLResponse:
    f = await form(request)

    async def go() -> str:
        body = UserCreate(name=f.get("name", ""), password=f.get("password", ""),
                          required_nfs=_names(f.get("nfs", "")))
        await run_in_threadpool(routes_nodes_users.create_user, request, Response(), body)
        return f"user {body.name} created"

    return await _do(go)


async def _replan(request: Request, user: str) -> str:
    """After a chain change: a user with a session is planned again where they are."""
    cur = await db(request).run(lambda s: _where(s, user))
    if cur is None:
        return "; it applies at their next login"
    node, mac, ip = cur
    await sessions.associate(coord(request), db(request), user, node, mac, ip)
    return f"; re-planned at {node}"


def _where(s: Session, user: str) -> tuple[str, str | None, str | None] | None:
    cur = repo.active_session(s, user)
    return None if cur is None else (cur.node_name, cur.mac, cur.ip)


@router.post("/users/{name}/chain", response_class=HTMLResponse)
async def chain(request: Request, name: str) -> HTMLResponse:
    """Fields: ``nf`` and ``op`` (add or remove)."""
    f = await form(request)

    async def go() -> str:
        nf, op = f.get("nf", ""), f.get("op", "add")
        if op not in ("add", "remove") or not nf:
            raise ValueError("give an NF and op=add or op=remove")

        def change(s: Session) -> list[str]:
            u = repo.get_user(s, name)
            nfs = list(u.required_nfs or [])
            if op == "add":
                known = {b.name for b in repo.list_bundles(s)}
                if nf not in known:
                    raise ValueError(f"unknown NF {nf!r}; the catalogue has {sorted(known)}")
                if nf not in nfs:
                    nfs.append(nf)
                    check_required_configs(s, name, [nf], u.nf_config)
            elif nf in nfs:
                nfs.remove(nf)
            repo.update_user(s, name, required_nfs=nfs)
            return nfs

        nfs = await db(request).run(change)
        return f"{name}'s chain: {' → '.join(nfs) or '(none)'}" + await _replan(request, name)

    return await _do(go)


@router.post("/users/{name}/end", response_class=HTMLResponse)
async def end_session(request: Request, name: str) -> HTMLResponse:
    async def go() -> str:
        had = await db(request).run(lambda s: _where(s, name))
        run = await sessions.idle(coord(request), db(request), name)
        if had is None and not run.plan.intents:  # (it said "session ended" all the same)
            return f"{name} has no session: nothing to end"
        return f"{name}'s session ended ({len(run.plan.intents)} intents)"

    return await _do(go)


@router.post("/nfs/migrate", response_class=HTMLResponse)
async def migrate(request: Request) -> HTMLResponse:
    """Fields: ``instance`` (an NF instance id) and ``node`` (where to)."""
    f = await form(request)

    async def go() -> str:
        iid, node = f.get("instance", "").strip(), f.get("node", "")
        if not iid:
            raise ValueError("name the NF instance to migrate")
        out = await routes_instances.migrate(request, Response(), iid,
                                             body=MigrateBody(node=node))
        return f"migrating {iid} to {node} (operation {out.vnf_lcm_op_occs[0][:8]})"

    return await _do(go)


@router.post("/nfs/{iid}/mute", response_class=HTMLResponse)
async def mute(request: Request, iid: str) -> HTMLResponse:
    f = await form(request)

    async def go() -> str:
        off = f.get("off") == "1"
        fn = routes_notifications.unmute if off else routes_notifications.mute
        await run_in_threadpool(fn, request, iid)
        return f"{iid}: notifications {'unmuted' if off else 'muted'}"

    return await _do(go)


@router.post("/notifications/{nid}/ack", response_class=HTMLResponse)
async def ack(request: Request, nid: str = routes_notifications.NID) -> HTMLResponse:
    async def go() -> str:
        await run_in_threadpool(routes_notifications.ack, request, nid)
        request.app.state.orchestrator.hub.publish("notification_ack",
                                                   {"id": routes_notifications.nid_of(nid)})
        return f"notification {nid} acknowledged"

    return await _do(go)


@router.post("/notifications/{nid}/delete", response_class=HTMLResponse)
async def delete(request: Request, nid: str = routes_notifications.NID) -> HTMLResponse:
    async def go() -> str:
        await run_in_threadpool(routes_notifications.delete, request, nid)
        request.app.state.orchestrator.hub.publish("notification_deleted",
                                                   {"id": routes_notifications.nid_of(nid)})
        return f"notification {nid} deleted"

    return await _do(go)



@router.post("/nodes/{name}/state", response_class=HTMLResponse)
async def node_state(request: Request, name: str) -> HTMLResponse:
    """Field ``down``: 1 marks the node down (out of placement), 0 up again."""
    f = await form(request)

    async def go() -> str:
        if f.get("down") not in ("0", "1"):  # anything else marked it up (probe, 2026-12-05)
            raise InvalidInput("field down must be 1 (mark the node down) or 0 (up)")
        down = f.get("down") == "1"
        await routes_nodes_users.patch_node(request, name, body=NodePatch(admin_down=down))
        return f"node {name} marked {'down' if down else 'up'}"

    return await _do(go)


@router.post("/troubleshoot", response_class=HTMLResponse)
async def troubleshoot(request: Request) -> HTMLResponse:
    """Fields ``user``, ``destination``, ``port``, ``timeout_s`` (each may be empty): the
    API's question (POST /api/v1/troubleshoot), answered on the page when it ends."""
    f = await form(request)

    async def go() -> str:
        nums: dict[str, int] = {}
        for key, what in (("port", "a number 1-65535"), ("timeout_s", "seconds, 1-120")):
            v = f.get(key, "").strip()
            if v and not (v.isascii() and v.isdigit() and len(v) <= 6):
                raise ValueError(f"{key} {v[:20]!r}: give {what}")
            if v:
                nums[key] = int(v)
        body = TroubleshootBody.model_validate({
            "user": f.get("user", "").strip() or None,
            "destination": f.get("destination", "").strip() or None, **nums})
        op = await routes_troubleshoot.ops_of(request).start(body.model_dump())
        what = body.user or body.destination or "?"
        return f"asking where {what}'s traffic stops (question {op.id[:8]})"

    return await _do(go)
