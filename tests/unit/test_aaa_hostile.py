"""Hostile inputs to AAA: RFC 5176 requests whose attributes do not decode, NF names that
are not names, session cookies and Content-Lengths in non-ASCII digits, portal `next` URLs
that urlsplit refuses. Each gets a clear refusal (a NAK, a 4xx, None), never an exception."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pyrad import packet  # type: ignore[import-untyped]

from netfate import api_auth
from netfate.access.portal import _safe_next, parse_login
from netfate.radius import dae
from netfate.radius.client import dictionary

SECRET = b"dae-secret-0123456789"


def _raw(code: int, attrs: list[tuple[int, bytes]], user: bool = True) -> bytes:
    """A signed request whose attributes are given as raw bytes (pyrad does not encode them,
    so they can be malformed)."""
    req = packet.CoAPacket(code=code, id=7, secret=SECRET, dict=dictionary(),
                           message_authenticator=True)
    if user:
        req.AddAttribute("User-Name", "u1")
    for num, val in attrs:
        req[num] = [val]
    return bytes(req.RequestPacket())


MALFORMED = [
    [(27, b"\x00\x01")],            # Session-Timeout: 2 bytes, not 4
    [(28, b"\x00\x00\x01")],        # Idle-Timeout: 3 bytes
    [(8, b"\x0a\x00\x01")],         # Framed-IP-Address: 3 bytes
    [(1, b"\xff\xfe")],             # User-Name: not UTF-8
    [(44, b"\xff")],                # Acct-Session-Id: not UTF-8
    [(31, b"\xc3")],                # Calling-Station-Id: not UTF-8
    [(32, b"\xff")],                # NAS-Identifier: not UTF-8
    [(11, b"nfs:\xff")],            # Filter-Id: not UTF-8
    [(11, b"nfs:a\x00b")],          # Filter-Id: a NUL
    [(1, b"u\x00")],                # User-Name: a NUL
]


@pytest.mark.parametrize("attrs", MALFORMED)
def test_a_coa_with_an_attribute_that_does_not_decode_is_naked_407(
        attrs: list[tuple[int, bytes]]) -> None:
    _, req = dae.decode(_raw(packet.CoARequest, attrs), SECRET)
    result = dae.check(req)
    assert result is not None and result.error_cause == dae.INVALID_ATTRIBUTE_VALUE
    assert not any("b'" in v for v in req.ids.values())  # raw bytes never pass for a name


@pytest.mark.parametrize("filter_id", [
    "nfs:Firewall", "nfs:fire wall", "nfs:fire\u0662wall", "nfs:firewall;rm", "nfs:" + "a" * 40,
    "nfs:-x", "nfs:\uff46\uff49\uff52\uff45"])  # fullwidth letters
def test_filter_id_names_are_nf_names_in_ascii(filter_id: str) -> None:
    with pytest.raises(ValueError, match="not an NF name"):
        dae.parse_nfs([filter_id])
    assert dae.parse_nfs(["nfs: firewall , rate-limiter"]) == ("firewall", "rate-limiter")


def test_the_dae_server_answers_a_malformed_request_with_a_signed_nak() -> None:
    async def handler(req: dae.DaeRequest) -> dae.DaeResult:
        raise AssertionError("a malformed request reaches no session")

    async def run() -> list[bytes]:
        server = dae.DaeServer(SECRET, ["127.0.0.1"], handler)
        sent: list[bytes] = []

        class Transport:
            def sendto(self, data: bytes, addr: Any) -> None:
                sent.append(data)

        server.transport = Transport()  # type: ignore[assignment]
        server.datagram_received(_raw(packet.CoARequest, MALFORMED[0]), ("127.0.0.1", 5000))
        for _ in range(20):
            await asyncio.sleep(0.01)
            if sent:
                break
        return sent

    sent = asyncio.run(run())
    assert len(sent) == 1 and sent[0][0] == packet.CoANAK
    reply = packet.Packet(packet=sent[0], dict=dictionary())
    assert reply["Error-Cause"] == ["Invalid-Attribute-Value"]
    assert reply.message_authenticator


@pytest.mark.parametrize("exp", ["\u00b2", "\u0661\u0662\u0663", "9" * 5000, "+5", " 5", "5\n"])
def test_a_ui_session_cookie_in_odd_digits_is_no_session(exp: str) -> None:
    token = "t" * 32
    assert api_auth.session_ok(token, f"{exp}.abc") is False
    assert api_auth.session_ok(token, api_auth.session_value(token)) is True


@pytest.mark.parametrize("value", [
    "http://[::1", "http://a\uff03b@c/", "http://ex.com/\r\nSet-Cookie: x=1",
    "http://ex.com/\x00", "http://ex\u0430mple.com/", "javascript:alert(1)"])
def test_a_portal_next_url_it_cannot_use_is_dropped(value: str) -> None:
    assert _safe_next(value) is None
    body = f"username=user1&password=pw-0123456789&next={value}".encode()
    assert parse_login("application/x-www-form-urlencoded", body)[2] is None
    assert _safe_next("http://example.com/a?b=c") == "http://example.com/a?b=c"


def test_a_portal_content_length_in_odd_digits_is_a_bad_request() -> None:
    from starlette.datastructures import Headers

    from netfate.access import portal

    class Req:
        def __init__(self, length: str) -> None:
            self.headers = Headers(raw=[(b"content-length", length.encode())])

        async def stream(self) -> Any:
            yield b""

    for length in ("\u00b2", "\u0661"):
        with pytest.raises(portal.BadRequest, match="not a number"):
            asyncio.run(portal._read_body(Req(length)))  # type: ignore[arg-type]
    # thousands of ASCII digits: over any limit (413, as the API), not a 500 from int()
    with pytest.raises(portal.BadRequest, match="over 4096 bytes") as exc:
        asyncio.run(portal._read_body(Req("9" * 5000)))  # type: ignore[arg-type]
    assert exc.value.status == 413


def test_an_api_content_length_of_thousands_of_digits_is_413() -> None:
    from netfate.orchestrator.api.problems import BodyLimit

    reached: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)

    sent: list[dict[str, Any]] = []

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "path": "/api/v1/users", "method": "POST",
             "headers": [(b"content-length", b"9" * 5000)]}
    asyncio.run(BodyLimit(app, 1024)(scope, receive, send))  # type: ignore[arg-type]
    assert not reached and sent[0]["status"] == 413


@pytest.mark.parametrize(("field", "value"), [
    ("failure_window", float("nan")), ("backoff", float("nan")),
    ("account_failure_window", float("nan")), ("account_backoff", float("inf")),
    ("reauth_lifetime", float("nan")), ("acct_interim_interval", float("nan")),
    ("session_timeout", 2**31),  # past the database's integer: every login a 5xx
])
def test_radius_settings_that_would_turn_limits_off_are_refused(field: str, value: Any) -> None:
    from pydantic import ValidationError

    from netfate.errors import InvalidInput
    from netfate.radius.settings import RadiusSettings

    good = {"secret": "portal-secret-0123456789", "api_key": "api-key-0123456789abcdef"}
    RadiusSettings(**good).check()
    # inf and nan are refused as the settings are read (allow_inf_nan=False), the rest by
    # check(): either way naming the field
    with pytest.raises((InvalidInput, ValidationError), match=field):
        RadiusSettings(**good, **{field: value}).check()
