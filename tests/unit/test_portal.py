"""The captive portal against fake RADIUS, orchestrator and leases (no root, no network)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from netfate.access.portal import AcceptError, WindowLimiter, create_portal_app, parse_login
from netfate.radius.client import AuthResult, RadiusError, RadiusTimeout

PORTAL = "10.90.16.1"
CLIENT = "10.90.16.20"
MAC = "02:00:00:00:00:20"
API = "https://portal.netfate/capport/api"  # RFC 8908 section 3: https only
USER_PORTAL = "https://portal.netfate/login"
FORM = "application/x-www-form-urlencoded"
JSON = {"Accept": "application/json"}


@dataclass
class Fakes:
    """The portal's outside world, recording every call."""

    result: AuthResult | Exception = field(
        default_factory=lambda: AuthResult(True, "10.90.100.7", "", None))
    accept_error: Exception | None = None
    leases: dict[str, str] = field(default_factory=lambda: {CLIENT: MAC})
    auth_calls: list[tuple[str, str, str]] = field(default_factory=list)
    accept_calls: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    mac_calls: list[str] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)

    def authenticate(self, user: str, password: str, mac: str) -> AuthResult:
        self.threads.append(threading.current_thread().name)
        self.auth_calls.append((user, password, mac))
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    async def on_accept(self, user: str, mac: str, ip: str, framed: str | None) -> None:
        self.accept_calls.append((user, mac, ip, framed))
        if self.accept_error is not None:
            raise self.accept_error

    def mac_for_ip(self, ip: str) -> str | None:
        self.mac_calls.append(ip)
        return self.leases.get(ip)

    @property
    def called(self) -> bool:
        return bool(self.auth_calls or self.accept_calls or self.mac_calls)


def make(fakes: Fakes, limiter: WindowLimiter | None = None) -> Any:
    return create_portal_app("cpe1", PORTAL, fakes.authenticate, fakes.on_accept,
                             fakes.mac_for_ip, limiter=limiter or WindowLimiter(1000, 10),
                             capport_api_url=API, portal_url=USER_PORTAL)


def call(app: Any, method: str, url: str, *, client_ip: str = CLIENT,
         **kw: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(client_ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{PORTAL}") as c:
            return await c.request(method, url, **kw)
    return asyncio.run(go())


def login(app: Any, data: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
    return call(app, "POST", "/login", data=data or {"username": "alice", "password": "pw1"},
                **kw)


# -- redirect and form ------------------------------------------------------------------
def test_any_other_site_is_redirected_to_the_login_page() -> None:
    app = make(Fakes())
    r = call(app, "GET", "http://example.com/news?id=3")
    assert r.status_code == 302
    loc = urlsplit(r.headers["location"])
    assert (loc.scheme, loc.netloc, loc.path) == ("http", PORTAL, "/login")
    assert parse_qs(loc.query)["next"] == ["http://example.com/news?id=3"]
    assert r.headers["cache-control"] == "no-store"
    r = call(app, "GET", "http://10.255.0.1:8080/")
    assert r.status_code == 302
    r = call(app, "POST", "http://example.com/login", data={"username": "a", "password": "b"})
    assert r.status_code == 302  # credentials meant for another site are not taken


@pytest.mark.parametrize("url", [f"http://{PORTAL}/", f"http://{PORTAL}/login",
                                 "http://portal.netfate/login", f"http://{PORTAL}:8080/login"])
def test_the_portal_itself_shows_the_form(url: str) -> None:
    r = call(make(Fakes()), "GET", url)
    assert r.status_code == 200
    assert 'name="username"' in r.text and 'name="password"' in r.text
    assert 'method="post"' in r.text


def test_form_keeps_a_safe_next_only() -> None:
    app = make(Fakes())
    r = call(app, "GET", "/login", params={"next": "http://example.com/a\"<b>"})
    assert 'name="next"' in r.text and "&quot;&lt;b&gt;" in r.text and '"<b>' not in r.text
    r = call(app, "GET", "/login", params={"next": "javascript:alert(1)"})
    assert 'name="next"' not in r.text


def test_unknown_paths_and_methods_on_the_portal() -> None:
    app = make(Fakes())
    assert call(app, "GET", "/nope").status_code == 404
    r = call(app, "DELETE", "/login")
    assert r.status_code == 405 and "POST" in r.headers["allow"]
    assert call(app, "GET", "/healthz").json() == {"ok": True, "node": "cpe1"}


# -- login outcomes ---------------------------------------------------------------------
def test_accept_sets_the_user_up_and_says_where() -> None:
    f = Fakes()
    r = login(make(f), data={"username": "alice", "password": "pw1",
                             "next": "http://example.com/"})
    # Issue #16: straight back to the page asked for; nothing to renew or reconnect.
    assert r.status_code == 303 and r.headers["location"] == "http://example.com/"
    assert f.auth_calls == [("alice", "pw1", MAC)]
    assert f.accept_calls == [("alice", MAC, CLIENT, "10.90.100.7")]
    assert f.threads and f.threads[0] != threading.main_thread().name  # sync: off the loop
    assert "10.90.100.7" in r.text and "renew" not in r.text.lower()
    assert 'href="http://example.com/"' in r.text
    assert "pw1" not in r.text
    r = login(make(f))
    assert r.status_code == 200 and "You are online" in r.text


def test_accept_json() -> None:
    f = Fakes()
    r = login(make(f), headers=JSON)
    assert r.status_code == 200
    body = r.json()
    assert {k: body[k] for k in ("ok", "user", "ip", "node", "mac", "renew")} == {
        "ok": True, "user": "alice", "ip": "10.90.100.7", "node": "cpe1", "mac": MAC,
        "renew": False}
    assert body["radius_ms"] >= 0 and body["setup_ms"] >= 0


def test_accept_without_framed_ip_keeps_the_current_address() -> None:
    f = Fakes(result=AuthResult(True, None, "", None))
    r = login(make(f), headers=JSON)
    assert r.json()["ip"] == CLIENT and r.json()["renew"] is False
    assert f.accept_calls == [("alice", MAC, CLIENT, None)]
    r = login(make(Fakes(result=AuthResult(True, None, "", None))))
    assert "Renew" not in r.text


def test_reject_shows_the_reply_message() -> None:
    f = Fakes(result=AuthResult(False, None, "wrong password", None))
    r = login(make(f))
    assert r.status_code == 401 and "wrong password" in r.text
    assert not f.accept_calls
    r = login(make(f), headers=JSON)
    assert r.status_code == 401 and r.json() == {"ok": False, "error": "wrong password"}
    f.result = AuthResult(False, None, "", None)
    assert login(make(f), headers=JSON).json()["error"] == "wrong user name or password"


@pytest.mark.parametrize("exc", [RadiusTimeout("no reply"), RadiusError("no server")])
def test_radius_down_is_503(exc: Exception) -> None:
    f = Fakes(result=exc)
    r = login(make(f), headers=JSON)
    assert r.status_code == 503
    assert r.json() == {"ok": False, "error": "authentication service unavailable: please "
                        "try again in a minute"}
    assert not f.accept_calls


def test_orchestrator_failure_is_502_with_the_reason() -> None:
    f = Fakes(accept_error=AcceptError("the orchestrator answered 409: user is busy"))
    r = login(make(f), headers=JSON)
    assert r.status_code == 502 and "user is busy" in r.json()["error"]
    assert "user is busy" in login(make(f)).text


def test_async_authenticate_is_awaited() -> None:
    calls = []

    async def auth(user: str, password: str, mac: str) -> AuthResult:
        calls.append(user)
        return AuthResult(True, "10.90.100.9", "", None)

    f = Fakes()
    app = create_portal_app("cpe1", PORTAL, auth, f.on_accept, f.mac_for_ip)
    assert login(app, headers=JSON).json()["ip"] == "10.90.100.9" and calls == ["alice"]


def test_client_without_a_lease_is_400() -> None:
    f = Fakes(leases={})
    r = login(make(f), headers=JSON)
    assert r.status_code == 400 and r.json()["error"].startswith(f"no DHCP lease for {CLIENT}")
    assert not f.auth_calls and not f.accept_calls


# -- malformed posts ----------------------------------------------------------------------
# (case, request, words, status: 400 unless given)
BAD: list[tuple[Any, ...]] = [
    ("no username", {"data": {"password": "x"}}, "username is missing"),
    ("no password", {"data": {"username": "alice"}}, "password is missing"),
    ("empty username", {"data": {"username": "", "password": "x"}}, "username must be"),
    ("empty password", {"data": {"username": "alice", "password": ""}}, "password is empty"),
    ("long username", {"data": {"username": "a" * 65, "password": "x"}}, "username must be"),
    ("upper case", {"data": {"username": "Alice", "password": "x"}}, "username must be"),
    ("dot dot", {"data": {"username": "..", "password": "x"}}, "username must be"),
    ("space", {"data": {"username": "al ice", "password": "x"}}, "username must be"),
    ("long password", {"data": {"username": "alice", "password": "é" * 65}},
     "password is over 128 bytes"),
    ("NUL", {"data": {"username": "alice", "password": "a\x00b"}}, "NUL"),
    ("twice", {"content": b"username=a&username=b&password=x",
               "headers": {"Content-Type": FORM}}, "username is given more than once"),
    ("json", {"json": {"username": "alice", "password": "x"}}, "x-www-form-urlencoded", 415),
    ("no type", {"content": b"username=alice&password=x"}, "x-www-form-urlencoded", 415),
    ("latin-1", {"content": b"username=alice&password=x",
                 "headers": {"Content-Type": FORM + "; charset=iso-8859-1"}}, "charset", 415),
    # HTTP framing, as the API answers it (probe of 2026-12-06: these were read as plain)
    ("gzip", {"content": b"username=alice&password=x",
              "headers": {"Content-Type": FORM, "Content-Encoding": "gzip"}},
     "Content-Encoding", 415),
    ("length and chunked", {"content": b"username=alice&password=x",
                            "headers": {"Content-Type": FORM, "Transfer-Encoding": "chunked",
                                        "Content-Length": "25"}},
     "both Content-Length and Transfer-Encoding"),
    ("huge length", {"content": b"username=alice&password=x",
                     "headers": {"Content-Type": FORM, "Content-Length": "9" * 20}},
     "over 4096 bytes", 413),
    ("raw non-utf8", {"content": b"username=alice&password=\xff",
                      "headers": {"Content-Type": FORM}}, "not valid UTF-8"),
    ("escaped non-utf8", {"content": b"username=alice&password=%ff%fe",
                          "headers": {"Content-Type": FORM}}, "not valid UTF-8"),
    ("big body", {"content": b"username=alice&password=x&pad=" + b"a" * 5000,
                  "headers": {"Content-Type": FORM}}, "over 4096 bytes", 413),
    ("many fields", {"content": b"&".join(b"f%d=1" % i for i in range(20)),
                     "headers": {"Content-Type": FORM}}, "too many fields"),
]


@pytest.mark.parametrize("kw,message,status", [(b[1], b[2], (*b[3:], 400)[0]) for b in BAD],
                         ids=[b[0] for b in BAD])
def test_malformed_login_is_refused_and_calls_nothing(kw: dict[str, Any], message: str,
                                                      status: int) -> None:
    f = Fakes()
    headers = {**JSON, **kw.pop("headers", {})}
    r = call(make(f), "POST", "/login", headers=headers, **kw)
    assert r.status_code == status, r.text
    assert r.json()["ok"] is False and message in r.json()["error"]
    assert not f.called
    # The same in HTML.
    r = call(make(f), "POST", "/login", headers={k: v for k, v in headers.items()
                                                  if k != "Accept"}, **kw)
    assert r.status_code == status and "text/html" in r.headers["content-type"]


def test_streamed_body_over_the_limit_is_refused() -> None:
    async def chunks() -> Any:
        for _ in range(10):
            yield b"a" * 1000

    f = Fakes()
    r = call(make(f), "POST", "/login", content=chunks(),
             headers={"Content-Type": FORM, **JSON})
    assert r.status_code == 413 and "over 4096 bytes" in r.json()["error"]
    assert not f.called


def test_parse_login_accepts_a_utf8_password_and_charset() -> None:
    body = b"username=bob.x-1&password=p%C3%A4ss+w"
    assert parse_login(FORM + "; charset=UTF-8", body) == ("bob.x-1", "päss w", None)


def test_a_password_sent_in_nfd_is_checked_in_nfc() -> None:
    """RFC 8265 §4.2.2: OpaqueString's enforcement normalises to NFC, the form every
    password is set in (the API refuses others). A device sending NFD ("a" and a combining
    diaeresis) was refused as a wrong password (probe of 2026-12-06)."""
    body = b"username=bob&password=pa%CC%88ss"  # p, a, U+0308, s, s
    assert parse_login(FORM, body) == ("bob", "p\u00e4ss", None)


# -- rate limit -----------------------------------------------------------------------------
def test_rate_limit_per_client_ip() -> None:
    now = [100.0]
    f = Fakes(result=AuthResult(False, None, "wrong password", None))
    app = make(f, WindowLimiter(3, 10.0, clock=lambda: now[0]))
    codes = [login(app, headers=JSON).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    r = login(app, headers=JSON)
    assert r.status_code == 429 and int(r.headers["retry-after"]) == 10
    assert "too many login attempts" in r.json()["error"]
    assert len(f.auth_calls) == 3
    # Another client is not affected; the first may try again once the window has passed.
    f.leases["10.90.16.21"] = "02:00:00:00:00:21"
    assert login(app, headers=JSON, client_ip="10.90.16.21").status_code == 401
    now[0] += 10.01
    assert login(app, headers=JSON).status_code == 401


def test_default_limit_is_ten_per_ten_seconds() -> None:
    f = Fakes(result=AuthResult(False, None, "no", None))
    app = create_portal_app("cpe1", PORTAL, f.authenticate, f.on_accept, f.mac_for_ip)
    codes = [login(app, headers=JSON).status_code for _ in range(11)]
    assert codes == [401] * 10 + [429]


def test_limiter_forgets_the_least_recent_key_when_full() -> None:
    lim = WindowLimiter(1, 10.0, max_keys=2, clock=lambda: 0.0)
    assert lim.hit("a") is None and lim.hit("b") is None
    assert lim.hit("a") == 10
    assert lim.hit("c") is None  # evicts "b", the least recently seen
    assert lim.hit("b") is None


# -- issue #16: real devices -------------------------------------------------------------
def test_every_page_fits_a_phone_and_fetches_nothing() -> None:
    app = make(Fakes(result=AuthResult(False, None, "wrong user name or password", None)))
    pages = [call(app, "GET", "/login"), call(app, "GET", "/nope"), login(app)]
    for r in pages:
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in r.text
        assert "<style>" in r.text
        assert "src=" not in r.text and "<link" not in r.text and "@import" not in r.text


def test_a_refused_login_shows_the_form_again_with_the_reason_in_words() -> None:
    app = make(Fakes(result=AuthResult(False, None, "wrong user name or password", None)))
    r = login(app, data={"username": "alice", "password": "x", "next": "http://example.com/"})
    assert r.status_code == 401
    assert 'role="alert"' in r.text and "wrong user name or password" in r.text
    assert 'value="alice"' in r.text and 'value="http://example.com/"' in r.text
    r = login(app, data={"username": "Not Valid", "password": "x"})
    assert r.status_code == 400 and "username must be" in r.text and 'name="password"' in r.text


def test_capport_api_says_captive_then_not_with_the_seconds_remaining() -> None:
    """RFC 8908: application/captive+json with captive, user-portal-url and (once logged in
    with a Session-Timeout) seconds-remaining."""
    f = Fakes(result=AuthResult(True, "10.90.100.7", "", 3600))
    app = make(f)
    r = call(app, "GET", API, headers={"Accept": "application/captive+json"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/captive+json")
    assert r.json() == {"captive": True, "user-portal-url": USER_PORTAL}
    assert "no-store" in r.headers["cache-control"]
    assert login(app, headers=JSON).status_code == 200
    body = call(app, "GET", API).json()
    assert body["captive"] is False and 3590 <= body["seconds-remaining"] <= 3600
    # another device is still captive
    other = call(app, "GET", API, client_ip="10.90.16.99").json()
    assert other["captive"] is True


def test_logged_in_is_what_the_platform_says_after_the_fresh_login() -> None:
    f = Fakes()
    sessions = {MAC: True}
    app = create_portal_app("cpe1", PORTAL, f.authenticate, f.on_accept, f.mac_for_ip,
                            logged_in=lambda mac: sessions.get(mac, False),
                            capport_api_url=API)
    assert call(app, "GET", API).json()["captive"] is False
    # Logged in, yet the browser reached the portal for a site: a page that reloads it.
    r = call(app, "GET", "http://example.com/page")
    assert r.status_code == 200 and 'http-equiv="refresh"' in r.text
    assert "http://example.com/page" in r.text
    sessions[MAC] = False  # the session ended (idle): captive again
    assert call(app, "GET", API).json()["captive"] is True
    assert call(app, "GET", "http://example.com/page").status_code == 302

    def broken(mac: str) -> bool:
        raise httpx.ConnectError("orchestrator away")

    app = create_portal_app("cpe1", PORTAL, f.authenticate, f.on_accept, f.mac_for_ip,
                            logged_in=broken, capport_api_url=API)
    assert call(app, "GET", API).json()["captive"] is True


def test_a_fresh_login_here_counts_only_until_the_platform_can_say() -> None:
    """A device logged in here, whose session the platform then ended (the user logged in
    on another device, or was deleted), was told "You are logged in" for 30 s (probe of
    2026-12-06). The platform's "no" stands once its list can show the login (3 s)."""
    from netfate.access.capport import Logins

    f = Fakes()
    now = [100.0]
    seen = Logins(clock=lambda: now[0])
    sessions = {MAC: False}
    app = create_portal_app("cpe1", PORTAL, f.authenticate, f.on_accept, f.mac_for_ip,
                            logged_in=lambda mac: sessions.get(mac, False), logins=seen,
                            capport_api_url=API)
    seen.accepted(MAC, "alice", None)
    assert call(app, "GET", API).json()["captive"] is False  # just now: not listed yet
    now[0] += 5.0
    assert call(app, "GET", API).json()["captive"] is True  # the platform's word
    assert call(app, "GET", "http://example.com/page").status_code == 302
    # without the platform (the portal alone), its own logins count for the grace period
    alone = create_portal_app("cpe1", PORTAL, f.authenticate, f.on_accept, f.mac_for_ip,
                              logins=seen, capport_api_url=API)
    assert call(alone, "GET", API).json()["captive"] is False


def test_capport_api_is_https_only_and_absent_without_a_certificate() -> None:
    """RFC 8908 section 3: the API's URI is https. Over plain http it is a 404 that names
    the https URL; a portal without a certificate has no API at all."""
    app = make(Fakes())
    r = call(app, "GET", "http://portal.netfate/capport/api",
             headers={"Accept": "application/captive+json"})
    assert r.status_code == 404 and API in r.text
    f = Fakes()
    bare = create_portal_app("cpe1", PORTAL, f.authenticate, f.on_accept, f.mac_for_ip)
    r = call(bare, "GET", API)
    assert r.status_code == 404 and "TLS certificate" in r.text
    # The login page itself is served over https too (the user-portal-url).
    r = call(app, "GET", USER_PORTAL)
    assert r.status_code == 200 and 'name="password"' in r.text
