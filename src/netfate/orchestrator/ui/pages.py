"""The UI's pages, their live fragments, the login form and the UI's event stream.

Every page is one view's fragment inside the common frame; the fragment's container asks
for itself again (``/ui/frag/<view>``) when the event stream (``/ui/events``) reports a
change, and every few seconds for telemetry, so a roam, a migration or a notification shows
without a reload. The gate (orchestrator.api.auth) has checked the session before any of
these runs, except the login form and the static assets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from netfate import api_auth
from netfate.errors import InvalidInput, NetfateError, NotFound
from netfate.orchestrator.api.auth import session_of
from netfate.orchestrator.api.deps import coord, db, orch
from netfate.orchestrator.nf_status import nf_status
from netfate.orchestrator.ui import views

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/ui", include_in_schema=False)
VIEWS = ("topology", "users", "nfs", "operations", "notifications", "troubleshoot")
TITLES = {"topology": "Topology", "users": "Users", "nfs": "NF instances",
          "operations": "Operations", "notifications": "Notifications",
          "troubleshoot": "Troubleshoot"}


def _hms(ts: float | None) -> str:
    return "" if not ts else time.strftime("%H:%M:%S", time.localtime(ts))


templates.env.filters["hms"] = _hms


def static_app() -> StaticFiles:
    return StaticFiles(directory=HERE / "static")


FORM_TYPE = "application/x-www-form-urlencoded"


async def form(request: Request) -> dict[str, str]:
    """An urlencoded body's fields (last value of each), as htmx and the login form send.
    InvalidInput (422) for another kind of body (a multipart or JSON one read as empty
    fields, and was answered "'' is not a name") or for bytes that are not UTF-8 (they were
    stored as U+FFFD: third probe of 2026-12-06)."""
    ctype = request.headers.get("content-type", FORM_TYPE).split(";", 1)[0].strip().lower()
    if ctype != FORM_TYPE:
        raise InvalidInput(f"the console's forms take {FORM_TYPE} bodies, not "
                           f"{ctype[:60] or 'none'}")
    try:
        body = (await request.body()).decode("utf-8")
        fields = parse_qs(body, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise InvalidInput("a form field is not UTF-8 (percent-encode its UTF-8 bytes)") \
            from None
    return {k: v[-1] for k, v in fields.items()}


def _token(request: Request) -> str:
    tok = orch(request).api_token
    assert tok is not None  # the gate answers 503 before the start
    return tok


def csrf_for(request: Request) -> str:
    session = session_of({"cookie": request.headers.get("cookie", "")}) or ""
    return api_auth.csrf_value(_token(request), session)


async def view_data(request: Request, view: str) -> dict[str, Any]:
    """The data of `view` (one of VIEWS) for its template. NotFound for another name."""
    q = request.query_params
    handovers = list(orch(request).handovers)
    readers: dict[str, Callable[[Session], Any]] = {
        "topology": views.topology,
        "users": lambda s: views.users(s, handovers),
        "nfs": views.instances,
        "operations": views.operations,
        "troubleshoot": views.troubleshoots,
        "notifications": lambda s: views.notifications(
            s, owner=q.get("owner"), node=q.get("node"), nf=q.get("nf"),
            acknowledged={"yes": True, "no": False}.get(q.get("acked", ""))),
    }
    if view not in readers:
        raise NotFound(f"no view {view!r}; the UI has {list(VIEWS)}")
    read = readers[view]

    def both(s: Session) -> dict[str, Any]:
        return {"data": read(s), "choices": views.choices(s)}

    out = await db(request).run(both)
    out["filters"] = {k: q.get(k, "") for k in ("owner", "node", "nf", "acked")}
    out["query"] = str(request.url.query)
    return out


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    return templates.TemplateResponse(request, "login.html", {"error": None})


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    token = orch(request).api_token
    given = (await form(request)).get("token", "").strip()
    if not token or not api_auth.bearer_ok(f"Bearer {given}", token):
        return templates.TemplateResponse(request, "login.html", {
            "error": "That is not the operator token."}, status_code=401)
    r = RedirectResponse("/ui/", status_code=303)
    r.set_cookie(api_auth.SESSION_COOKIE, api_auth.session_value(token), path="/ui",
                 max_age=api_auth.SESSION_TTL_S, httponly=True, samesite="strict",
                 secure=request.url.scheme == "https")
    return r


@router.post("/logout")
def logout() -> Response:
    r = Response(status_code=204, headers={"HX-Redirect": "/ui/login"})
    r.delete_cookie(api_auth.SESSION_COOKIE, path="/ui")
    return r


@router.get("/")
def home() -> Response:
    return RedirectResponse("/ui/topology", status_code=303)


@router.get("/events")
async def events(request: Request) -> StreamingResponse:
    """The hub's events for htmx: each as ``change`` (every view refreshes on it) and under
    its own name (``op``, ``notification``, ``reauth``, ...)."""
    hub = orch(request).hub
    q = hub.subscribe()

    async def stream() -> AsyncIterator[str]:
        try:
            yield ": netfate ui events\n\n"
            while not await request.is_disconnected():
                try:
                    ev = await asyncio.wait_for(q.get(), 15)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                kind = str(ev["event"]).replace("\n", " ")
                yield f"event: change\ndata: {kind}\n\n"
                yield f"event: {kind}\ndata: {kind}\n\n"
        finally:
            hub.unsubscribe(q)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store"})


@router.get("/nfs/{iid}/status", response_class=HTMLResponse)
async def nf_status_cell(request: Request, iid: str) -> Response:
    """One NF's live status report (asked of its agent on demand, not on every refresh)."""
    try:
        data: dict[str, Any] = await nf_status(db(request), coord(request).bus, iid)
        error = None
    except NetfateError as exc:
        data, error = {}, str(exc)
    return templates.TemplateResponse(request, "nf_status.html",
                                      {"status": data, "error": error})


@router.get("/frag/{view}", response_class=HTMLResponse)
async def fragment(request: Request, view: str) -> Response:
    data = await view_data(request, view)
    return templates.TemplateResponse(request, f"{view}.html", {"view": view, **data})


@router.get("/{view}", response_class=HTMLResponse)
async def page(request: Request, view: str) -> Response:
    data = await view_data(request, view)
    return templates.TemplateResponse(request, "page.html", {
        "view": view, "views": VIEWS, "titles": TITLES, "csrf": csrf_for(request), **data})
