"""Errors as RFC 7807 problem bodies (every 4xx and 5xx); a bound on request bodies."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from netfate.errors import NetfateError, http_status
from netfate.orchestrator.admission import Overloaded

log = logging.getLogger("netfate.api")

TITLES = {404: "Not Found", 409: "Conflict", 413: "Payload Too Large", 422: "Invalid input",
          400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
          405: "Method Not Allowed", 500: "Internal Server Error", 502: "Bad Gateway",
          504: "Gateway Timeout", 415: "Unsupported Media Type", 429: "Too Many Requests",
          503: "Unavailable"}
_JSON_TYPES = {type(None): "null", list: "an array", str: "a string", int: "a number",
               float: "a number", bool: "a boolean", bytes: "a non-JSON body"}


# A problem's detail is cut past this many characters: a message quoting what the user
# sent (a 1,000,000-character nf_config key, quoted twice) made a 2 MB answer (probe of
# 2026-12-06).
MAX_DETAIL = 2000


def problem(status: int, detail: str, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem answer; `detail` cut to MAX_DETAIL characters."""
    if len(detail) > MAX_DETAIL:
        detail = f"{detail[:MAX_DETAIL]}... ({len(detail)} characters in all)"
    body = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status,
            "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def install(app: FastAPI) -> None:
    app.add_middleware(CatchAll)  # inside the BodyLimit that create_app adds after

    @app.exception_handler(NetfateError)
    async def _netfate(_: Request, exc: NetfateError) -> JSONResponse:
        if isinstance(exc, Overloaded):  # past capacity: nothing done, come back later
            resp = problem(429, str(exc))
            resp.headers["Retry-After"] = exc.retry_after_header
            return resp
        return problem(http_status(exc, 503), str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        bad_json = [e for e in errors if e.get("type") == "json_invalid"]
        if bad_json:  # not JSON at all: a bad request rather than an invalid one
            e = bad_json[0]
            pos = e.get("loc", ("body", 0))[-1]
            why = (e.get("ctx") or {}).get("error") or e.get("msg")
            return problem(400, f"malformed JSON body at character {pos}: {why}")
        errs = []
        for e in errors:
            loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            msg = str(e.get("msg"))
            if not loc and e.get("type") in ("model_attributes_type", "dict_type"):
                ctype = request.headers.get("content-type") or "none"
                got = _JSON_TYPES.get(type(e.get("input")), type(e.get("input")).__name__)
                msg = (f"the body must be a JSON object, not {got} (the request's "
                       f"Content-Type: {ctype}; send application/json)")
            elif not loc and e.get("type") == "missing":
                msg = "the body is empty: send a JSON object (Content-Type: application/json)"
            errs.append(f"{loc or '(body)'}: {msg}")
        return problem(422, "; ".join(errs)[:2000])

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        where = f"{request.method} {request.url.path}"
        if exc.status_code == 404 and detail == "Not Found":  # the router's: no such path
            detail = f"no such path: {request.url.path} (see /openapi.json)"
        if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):
            detail = "malformed JSON body: nested too deeply"  # json's own recursion bound
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            allowed = ", ".join(_allowed_methods(request)) or headers.get("Allow", "")
            headers["Allow"] = allowed
            detail = f"{where}: method not allowed here; allowed: {allowed or 'none'}"
        resp = problem(exc.status_code, detail)
        for k, v in headers.items():
            resp.headers[k] = v
        return resp


def _allowed_methods(request: Request) -> list[str]:
    """The methods some route takes at this path. (Starlette's Allow header names those of
    the first route matching the path only, and GET and POST /users are two routes.)"""
    out = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        probe = {**request.scope, "method": method}
        if any(r.matches(probe)[0] == Match.FULL for r in request.app.router.routes):
            out.append(method)
            if method == "GET":
                out.append("HEAD")  # api/head.py: every GET answers HEAD
    return out


class CatchAll:
    """A bug (an exception no handler maps) is still answered with a problem body, 500, the
    traceback going to the log and not to the client. Unlike Starlette's own last resort, it
    does not re-raise, so the server keeps the client's keep-alive connection open instead of
    dropping it under the next request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(msg: Message) -> None:
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, receive, tracked)
        except StarletteHTTPException:
            raise
        except Exception as exc:
            if started:  # too late for a problem body
                raise
            where = f"{scope.get('method')} {scope.get('path')}"
            log.exception("unexpected error in %s", where)
            await problem(500, f"internal error ({type(exc).__name__}) in {where}; the "
                               "orchestrator's log has the details")(scope, receive, send)


class BodyLimit:
    """Refuse bodies over `limit` bytes with 413, before they are read into memory. Paths in
    `large` (bundle uploads) may send up to `limit`; every other one (JSON bodies) up to
    `small` if given."""

    def __init__(self, app: ASGIApp, limit: int, small: int | None = None,
                 large: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.big = limit
        self.small = limit if small is None else min(small, limit)
        self.large = large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.big if scope.get("path") in self.large else self.small
        names = {k for k, _ in scope.get("headers", [])}
        if b"transfer-encoding" in names and b"content-length" in names:
            # RFC 9112 §6.1 lets a server refuse it; behind a proxy that reads the other
            # header, the body's end would differ (request smuggling).
            await problem(400, "both Content-Length and Transfer-Encoding: send one")(
                scope, receive, send)
            return
        enc = [v for k, v in scope.get("headers", []) if k == b"content-encoding"]
        if any(v.strip().lower() not in (b"", b"identity") for v in enc):
            await problem(415, "Content-Encoding is not supported: send the body as it "
                               "is")(scope, receive, send)
            return
        for k, v in scope.get("headers", []):
            # More than 18 digits is over any limit, and int() refuses over 4300 (a 500).
            if k == b"content-length" and v.isdigit() and (len(v) > 18 or int(v) > limit):
                await problem(413, f"body over {limit} bytes")(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)
            return msg

        try:
            await self.app(scope, limited, send)
        except _TooLarge as exc:  # not handled inside (a plain route reading the body)
            await problem(413, str(exc.detail))(scope, receive, send)


class _TooLarge(StarletteHTTPException):
    """Raised from receive() once a streamed body passes the limit. An HTTPException, so
    that FastAPI's body parsing re-raises it as it is (it turns other errors into 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"body over {limit} bytes")
