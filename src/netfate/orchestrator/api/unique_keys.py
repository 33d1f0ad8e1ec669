"""JSON request bodies whose objects name a member twice, that hold NaN or Infinity
or a string with a lone surrogate or a noncharacter are refused (422), naming it.

netfate.strict_json says why: `{"priority": 1, "priority": 60000}` was stored as 60000 while
a proxy or audit log reading the first saw 1. Malformed JSON is left to the routes' own parsing
(400, naming the character), and the body is handed on unchanged.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from netfate.orchestrator.api.problems import problem
from netfate.strict_json import DuplicateKey, unique_pairs, unpaired_text


def duplicate_key(body: bytes) -> str | None:
    """The first member name some object of the JSON document `body` gives twice; None if
    none does, or if `body` is no JSON at all (its parser will say why)."""
    refused = _refused(body)
    return refused[1] if refused is not None and refused[0] == "twice" else None


class _NotANumber(ValueError):
    pass


def _constant(token: str) -> Any:
    raise _NotANumber(token)


def _refused(body: bytes) -> tuple[str, str] | None:
    """Why the JSON document `body` is refused though Python reads it: ("twice", the
    member name an object gives twice), ("constant", NaN or Infinity: no JSON numbers,
    RFC 8259 §6) or ("text", a lone surrogate or noncharacter in a string: I-JSON, RFC
    7493 §2.1). None if none of these, or if `body` is no JSON at all (its parser will
    say why)."""
    try:
        doc = json.loads(body, object_pairs_hook=unique_pairs, parse_constant=_constant)
    except DuplicateKey as dup:
        return "twice", dup.key
    except _NotANumber as exc:
        return "constant", str(exc)
    except (ValueError, RecursionError):
        return None
    bad = unpaired_text(doc)
    return ("text", bad) if bad is not None else None


def _unreadable(body: bytes) -> str | None:
    """Why a JSON body cannot be read, where the parser would only say "There was an error
    parsing the body": not UTF-8 (RFC 8259 §8.1; UTF-16 with a BOM was read as JSON too), or
    a number of more digits than Python converts (4300). None if neither (the body is
    parsed once more only when it holds such a long run of digits)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"malformed JSON body: not UTF-8 (RFC 8259 §8.1) at byte {exc.start}"
    if text.startswith("\ufeff"):
        return "malformed JSON body: it starts with a byte order mark (RFC 8259 §8.1)"
    if _LONG_DIGITS.search(text) is not None:
        try:
            json.loads(text)
        except ValueError as exc:
            if "digits" in str(exc):
                return "malformed JSON body: a number has more than 4300 digits"
        except RecursionError:
            return None
    return None


_LONG_DIGITS = re.compile(r"\d{4300}")
# Routes whose body is never JSON: theirs says what it must be (415), not "malformed JSON".
NOT_JSON = frozenset({"/api/v1/vnf_packages"})
# Routes that read their JSON body themselves, strictly, and only once the caller has shown
# its key (FreeRADIUS's: a caller without it learns nothing from the body's checks).
SELF_PARSED = frozenset({"/api/v1/radius/authorize", "/api/v1/radius/authenticate"})


def _is_json(scope: Scope) -> bool:
    for k, v in scope.get("headers", []):
        if k == b"content-type":
            media: bytes = v.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


# The media types a JSON body of the API may be labelled with: JSON itself, and JSON Merge
# Patch (RFC 7396), which is what every PATCH of the API does.
JSON_TYPES = (b"application/json", b"application/merge-patch+json")
_CHARSET = re.compile(rb";\s*charset\s*=\s*\"?([^\";\s]*)", re.I)


def wrong_media(scope: Scope) -> str | None:
    """Why the body of an API request (POST, PUT, PATCH under /api/v1, bundle uploads
    aside) is not labelled as JSON, for a 415 (RFC 9110 §15.5.16); None if it is, or if it
    has no body. Before, a text/plain or XML body got 422, application/json-patch+json and
    any */*+json were read as JSON, and charset=utf-16 was ignored (probe of 2026-12-06)."""
    if scope.get("method") not in ("POST", "PUT", "PATCH") \
            or not str(scope.get("path", "")).startswith("/api/v1/") \
            or scope.get("path") in NOT_JSON | SELF_PARSED:
        return None
    headers = scope.get("headers", [])
    lengths = [v for k, v in headers if k == b"content-length"]
    chunked = any(k == b"transfer-encoding" for k, _ in headers)
    if not chunked and all(v.strip() == b"0" for v in lengths):
        return None  # no body: the route says whether it needs one
    types = [v for k, v in headers if k == b"content-type"]
    if len(types) != 1:
        return ("the body needs one Content-Type, application/json" if not types else
                "Content-Type is given more than once: give one, application/json")
    media = types[0].split(b";", 1)[0].strip().lower()
    shown = media.decode("latin-1")[:60]
    if media not in JSON_TYPES:
        return (f"Content-Type {shown!r} is not taken here: send the body as "
                "application/json" + (" (or application/merge-patch+json)"
                                      if scope.get("method") == "PATCH" else ""))
    charset = _CHARSET.search(types[0])
    if charset and charset.group(1).lower() not in (b"utf-8", b"utf8"):
        return (f"charset {charset.group(1).decode('latin-1')[:40]!r} is not taken: JSON "
                "is UTF-8 (RFC 8259 §8.1)")
    return None


class UniqueKeys:
    """ASGI middleware: a JSON body (Content-Type application/json or */*+json) whose
    objects repeat a name gets 422 before any route sees it. Put it inside the body limit,
    which bounds what it reads."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        wrong = wrong_media(scope) if scope["type"] == "http" else None
        if wrong is not None:
            await problem(415, wrong)(scope, receive, send)
            return
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH") \
                or not _is_json(scope) or scope.get("path") in NOT_JSON | SELF_PARSED:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            msg = await receive()
            if msg["type"] != "http.request":  # the client went away
                return
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body", False):
                break
        body = b"".join(chunks)
        unreadable = _unreadable(body)
        if unreadable is not None:
            await problem(400, unreadable)(scope, receive, send)
            return
        refused = _refused(body)
        if refused is not None:
            kind, what = refused
            detail = {
                "twice": f"the JSON body gives the member {what[:100]!r} twice in one "
                         "object (RFC 7493 §2.3): which one is meant?",
                "constant": f"malformed JSON body: {what} is not a JSON number (RFC 8259 "
                            "§6)",
                "text": f"the JSON body has a string with {what}, which JSON text "
                        "exchanged must not hold (I-JSON, RFC 7493 §2.1)"}[kind]
            await problem(422, detail)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
