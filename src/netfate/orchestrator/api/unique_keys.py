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


def _is_json(scope: Scope) -> bool:
    for k, v in scope.get("headers", []):
        if k == b"content-type":
            media: bytes = v.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


class UniqueKeys:
    """ASGI middleware: a JSON body (Content-Type application/json or */*+json) whose
    objects repeat a name gets 422 before any route sees it. Put it inside the body limit,
    which bounds what it reads."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH") \
                or not _is_json(scope) or scope.get("path") in NOT_JSON:
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
