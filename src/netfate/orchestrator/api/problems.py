"""Errors as RFC 7807 problem bodies; a bound on request bodies."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from netfate.errors import Conflict, InvalidInput, MissingCapability, NetfateError, NotFound

STATUS = {NotFound: 404, Conflict: 409, InvalidInput: 422, MissingCapability: 409}
TITLES = {404: "Not Found", 409: "Conflict", 413: "Payload Too Large", 422: "Invalid input",
          400: "Bad Request", 405: "Method Not Allowed", 503: "Unavailable"}


def problem(status: int, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status,
            "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def install(app: FastAPI) -> None:
    @app.exception_handler(NetfateError)
    async def _netfate(_: Request, exc: NetfateError) -> JSONResponse:
        status = next((v for k, v in STATUS.items() if isinstance(exc, k)), 503)
        return problem(status, str(exc))

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
                msg = (f"the body must be a JSON object (Content-Type: application/json), "
                       f"not {type(e.get('input')).__name__} (Content-Type: {ctype})")
            errs.append(f"{loc or '(body)'}: {msg}")
        return problem(422, "; ".join(errs)[:2000])

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail))


class BodyLimit:
    """Refuse bodies over `limit` bytes with 413, before they are read into memory."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for k, v in scope.get("headers", []):
            if k == b"content-length" and v.isdigit() and int(v) > self.limit:
                await problem(413, f"body over {self.limit} bytes")(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge(self.limit)
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
