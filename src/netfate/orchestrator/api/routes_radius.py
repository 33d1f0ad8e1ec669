"""The RADIUS back end for FreeRADIUS's rlm_rest: /radius/authenticate (the rate limit, then
the password or the re-authentication token: the one call the project's site makes per
Access-Request) and /radius/authorize (the rate limit alone, for a site that asks there).

Only FreeRADIUS may call these: each request must carry the key of its configuration in the
X-NetFATE-Radius-Key header (401 otherwise, before the body is looked at). The answers are
rlm_rest's: 200 with attributes (go on / Access-Accept), 401 with a Reply-Message
(Access-Reject). See netfate.radius.backend.
"""

from __future__ import annotations

import hmac
import json
import threading
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from netfate.metrics import orchestrator as metrics
from netfate.orchestrator.api.deps import db, orch
from netfate.orchestrator.api.problems import problem
from netfate.radius.backend import AuthDecision, RadiusBackend, RestRequest
from netfate.radius.settings import API_KEY_HEADER, RadiusSettings
from netfate.strict_json import DuplicateKey, unique_pairs, unpaired_text

router = APIRouter(prefix="/radius", tags=["radius"])

MAX_BODY = 64 * 1024  # a RADIUS packet is at most 4 KiB; its JSON a few times that
_init = threading.Lock()

_ATTR: dict[str, Any] = {
    "type": "object", "required": ["value"],
    "properties": {
        "type": {"type": "string"},
        "value": {"type": "array", "minItems": 1, "maxItems": 16,
                  "items": {"type": "string", "maxLength": 253}},
    },
}
_OPENAPI: dict[str, Any] = {
    "parameters": [{"name": API_KEY_HEADER, "in": "header", "required": True,
                    "schema": {"type": "string"},
                    "description": "the key in FreeRADIUS's configuration"}],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["User-Name", "User-Password"],
        "description": "the Access-Request's attributes, as rlm_rest encodes them "
                       "(body = 'json'); others are ignored",
        "properties": {a: _ATTR for a in ("User-Name", "User-Password",
                                          "Calling-Station-Id", "NAS-Identifier")},
    }}}},
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "go on (authorize) or Access-Accept (authenticate): rlm_rest "
                         "attributes such as reply:Framed-IP-Address"},
    400: {"description": "the body is not JSON"},
    401: {"description": "Access-Reject with reply:Reply-Message; or a missing or wrong "
                         f"{API_KEY_HEADER} (a problem body)"},
    413: {"description": f"body over {MAX_BODY} bytes"},
    422: {"description": "the JSON is not an Access-Request's attributes"},
}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def backend(request: Request) -> RadiusBackend:
    """The app's RADIUS back end, made on first use: its settings are app.state.
    radius_settings if the stack set them, else the orchestrator's radius_settings with the
    secrets kept in the orchestrator's state directory (where FreeRADIUS's starter finds
    them too)."""
    state = request.app.state
    b: RadiusBackend | None = getattr(state, "radius_backend", None)
    if b is None:
        with _init:
            b = getattr(state, "radius_backend", None)
            if b is None:
                given: RadiusSettings = getattr(state, "radius_settings", None) \
                    or orch(request).radius_settings \
                    or orch(request).settings.radius_settings
                settings = given.resolve(orch(request).settings.state_dir)
                b = state.radius_backend = RadiusBackend(db(request), settings)
    return b


async def _answer(request: Request, authenticate: bool) -> JSONResponse:
    b = backend(request)
    given = request.headers.get(API_KEY_HEADER, "").encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(given, b.settings.api_key.encode()):
        return problem(401, f"missing or wrong {API_KEY_HEADER} header: only FreeRADIUS "
                            "calls this")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return problem(413, f"body over {MAX_BODY} bytes")
    try:  # strict: NaN and Infinity are no JSON (RFC 8259 §6), a repeated member ambiguous
        data = json.loads(body, parse_constant=_no_constant, object_pairs_hook=unique_pairs)
    except DuplicateKey as e:  # well-formed but ambiguous (RFC 7493 §2.3), as the API's
        return problem(422, f"the JSON body gives the member {e.key[:100]!r} twice in one "
                            "object (RFC 7493 §2.3): which one is meant?")
    except ValueError as e:  # json's messages give a position, never the content
        return problem(400, f"malformed JSON body: {e}")
    except RecursionError:  # "[[[[..." within MAX_BODY: the decoder's stack, not a 500
        return problem(400, "malformed JSON body: nested too deeply")
    bad = unpaired_text(data)
    if bad is not None:  # I-JSON (RFC 7493 §2.1); not encodable, as the API's bodies
        return problem(422, f"the JSON body has a string with {bad} (RFC 7493 §2.1)")
    try:
        req = RestRequest.model_validate(data)
    except ValidationError as e:  # locations and reasons only: inputs may hold a password
        errs = [f"{'.'.join(str(x) for x in err['loc']) or '(body)'}: {err['msg']}"
                for err in e.errors(include_input=False, include_url=False)]
        return problem(422, "; ".join(errs)[:2000])
    fn = b.authenticate if authenticate else b.authorize
    decision: AuthDecision = await run_in_threadpool(fn, req.login())
    metrics.radius_request("authenticate" if authenticate else "authorize", decision.status)
    return JSONResponse(decision.body(), status_code=decision.status)


@router.post("/authorize", response_class=JSONResponse, openapi_extra=_OPENAPI,
             responses=_RESPONSES,
             summary="FreeRADIUS authorize: refuse a rate-limited client, else Auth-Type rest")
async def authorize(request: Request) -> JSONResponse:
    return await _answer(request, authenticate=False)


@router.post("/authenticate", response_class=JSONResponse, openapi_extra=_OPENAPI,
             responses=_RESPONSES,
             summary="FreeRADIUS authenticate: check the password, answer Framed-IP-Address")
async def authenticate(request: Request) -> JSONResponse:
    return await _answer(request, authenticate=True)
