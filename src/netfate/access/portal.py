"""The captive portal of one CPE: an ASGI app (Starlette).

Until a client logs in, the CPE's switch sends its HTTP to the services MAC and the services
namespace redirects it to this app, whatever the destination address. So a request whose
Host is not the portal gets a 302 to the login page; the login POST authenticates through
RADIUS and, on Access-Accept, has the platform set the user up (static DHCP host entry,
orchestrator associate). Everything that talks to the outside is injected:

    authenticate(user, password, mac) -> AuthResult      (RadiusClient.authenticate)
    on_accept(user, mac, client_ip, framed_ip) -> None   raise AcceptError to report 502 or 409
    mac_for_ip(ip) -> str | None                          (the DHCP leases)

    logged_in(mac) -> bool                                 (the orchestrator's sessions)

Each may be sync (run in a worker thread) or async. Answers are HTML (access/pages.py), or
JSON when the request accepts application/json: {"ok": true, "user", "ip", "node", "mac",
"renew"} or {"ok": false, "error"}. After a login the device is served at once on the
address it has: nothing to renew. The captive portal API (RFC 8908, access/capport.py)
answers at CAPPORT_PATH over https only (RFC 8908 section 3; the same app is served on the
portal's TLS port); over plain http it is a 404 naming the https URL. A logged-in device
that still reaches the portal for another site gets a page that reloads it shortly (its
steering is being installed, or its browser kept the captive resolver's answer).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import re
import threading
import time
import unicodedata
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from netfate import credentials
from netfate.access import capport, pages
from netfate.access.addressing import CAPPORT_PATH, PORTAL_NAME
from netfate.access.capport import Logins
from netfate.radius.client import AuthResult, RadiusError

log = logging.getLogger("netfate.access.portal")

MAX_BODY = 4096
OWN_WORD_S = 3.0  # s a login made here counts as logged in where the platform says no
MAX_USER = credentials.USERNAME_MAX
MAX_PASSWORD_BYTES = credentials.PASSWORD_MAX_BYTES  # RFC 2865 5.2
MAX_NEXT = 2048
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]

Authenticate = Callable[[str, str, str], AuthResult | Awaitable[AuthResult]]
OnAccept = Callable[[str, str, str, str | None], Awaitable[None] | None]
MacForIp = Callable[[str], str | Awaitable[str | None] | None]
LoggedIn = Callable[[str], bool | Awaitable[bool]]


class AcceptError(Exception):
    """on_accept could not set the user up: the orchestrator refused or is unreachable, or
    their NFs failed to start (``status`` 502, worth another try), or their configuration
    cannot work (``status`` 409, ``config_fault``: trying again cannot help until it is
    corrected; the NF said why)."""

    def __init__(self, message: str, *, config_fault: bool = False) -> None:
        super().__init__(message)
        self.config_fault = config_fault
        self.status = 409 if config_fault else 502


class BadRequest(Exception):
    """A malformed login POST; the message names the field. `status`: 400, or 413 (too
    large) or 415 (a media type or encoding the portal does not take), as the API answers
    (orchestrator/api/problems.BodyLimit)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class WindowLimiter:
    """At most ``limit`` events per key in any ``window`` seconds (a sliding window).
    Thread-safe; remembers at most ``max_keys`` keys, forgetting the least recent."""

    def __init__(self, limit: int = 10, window: float = 10.0, *, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1 or window <= 0 or max_keys < 1:
            raise ValueError("limit >= 1, window > 0, max_keys >= 1")
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str) -> int | None:
        """Count one event; None if allowed, else whole seconds until one would be."""
        with self._lock:
            now = self.clock()
            q = self._events.get(key)
            if q is None:
                if len(self._events) >= self.max_keys:
                    self._events.popitem(last=False)
                q = self._events[key] = deque()
            self._events.move_to_end(key)
            while q and q[0] <= now - self.window:
                q.popleft()
            if len(q) >= self.limit:
                return max(1, math.ceil(q[0] + self.window - now))
            q.append(now)
            return None


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Await an async callable; run a sync one off the event loop (it may block on I/O)."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    result = await asyncio.to_thread(fn, *args)
    if inspect.isawaitable(result):
        return await result
    return result


def _safe_next(value: str | None) -> str | None:
    """The page the client wanted, if it is a plain http(s) URL worth linking back to."""
    # Printable ASCII only (a browser percent-encodes the rest): no CR/LF or NUL to carry
    # into a page or a header; urlsplit raises on a bad IPv6 literal or an NFKC trick.
    if not value or len(value) > MAX_NEXT or not (value.isascii() and value.isprintable()):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    return value if parts.scheme in ("http", "https") and parts.netloc else None


def parse_login(content_type: str | None, body: bytes) -> tuple[str, str, str | None]:
    """(username, password, next) from a form-encoded body; BadRequest naming the field."""
    media, _, params = (content_type or "").partition(";")
    if media.strip().lower() != "application/x-www-form-urlencoded":
        raise BadRequest("the login must be posted as application/x-www-form-urlencoded", 415)
    charset = re.search(r"charset\s*=\s*\"?([\w-]+)", params, re.I)
    if charset and charset.group(1).lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise BadRequest(f"charset {charset.group(1)} is not supported: send UTF-8", 415)
    if len(body) > MAX_BODY:
        raise BadRequest(f"the request body is over {MAX_BODY} bytes", 413)
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False,
                          encoding="utf-8", errors="strict", max_num_fields=8)
    except UnicodeDecodeError:
        raise BadRequest("the form is not valid UTF-8") from None
    except ValueError:
        raise BadRequest("the form has too many fields") from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in fields:
            raise BadRequest(f"{key} is given more than once")
        fields[key] = value
    user = fields.get("username")
    password = fields.get("password")
    if user is None:
        raise BadRequest("username is missing")
    if password is None:
        raise BadRequest("password is missing")
    # The same rules as the API's (netfate.credentials): what can't be a password is refused
    # here in words rather than sent to RADIUS, where it could only fail (or, starting with
    # "reauth:", be read as a session token).
    # RFC 8265 §4.2.2 (OpaqueString) enforcement: the password in NFC, the form it was set
    # in (the API takes no other); a device that sends NFD is not refused for it.
    if not password.isascii():
        password = unicodedata.normalize("NFC", password)
    why = credentials.username_problem(user) or credentials.password_problem(
        password, new=False)
    if why:
        raise BadRequest(why)
    return user, password, _safe_next(fields.get("next"))


async def _read_body(request: Request) -> bytes:
    """The body, refusing (BadRequest) as soon as it is over MAX_BODY: a big upload is never
    buffered whole."""
    names = {k for k, _ in request.headers.raw}
    if b"content-length" in names and b"transfer-encoding" in names:
        # RFC 9112 §6.1: a proxy reading the other header would see another body's end
        # (request smuggling); the API refuses it too.
        raise BadRequest("both Content-Length and Transfer-Encoding: send one")
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise BadRequest("Content-Encoding is not supported: send the form as it is", 415)
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise BadRequest("Content-Length is not a number")
        if len(declared) > 18 or int(declared) > MAX_BODY:  # (int() of 4300+ digits fails)
            raise BadRequest(f"the request body is over {MAX_BODY} bytes", 413)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise BadRequest(f"the request body is over {MAX_BODY} bytes", 413)
    return body


def create_portal_app(
    node: str,
    services_ip: str,
    authenticate: Authenticate,
    on_accept: OnAccept,
    mac_for_ip: MacForIp,
    *,
    limiter: WindowLimiter | None = None,
    portal_hosts: Iterable[str] = (PORTAL_NAME,),
    logged_in: LoggedIn | None = None,
    logins: Logins | None = None,
    capport_api_url: str | None = None,
    portal_url: str | None = None,
) -> Starlette:
    """The portal of ``node`` at ``services_ip``. ``limiter`` caps login POSTs per client
    address (default 10 per 10 s). ``portal_hosts``: names besides services_ip that are the
    portal itself (not redirected). ``logged_in(mac)``: whether the platform holds a session
    for that device here (None: only the portal's own fresh logins count).
    ``capport_api_url``: the API's https URL (None: no API, as without a certificate);
    ``portal_url``: the user-portal-url it gives (default the login page on services_ip)."""
    lim = limiter if limiter is not None else WindowLimiter()
    seen = logins if logins is not None else Logins()
    own_hosts = {services_ip.lower(), *(h.lower() for h in portal_hosts)}
    login_url = f"http://{services_ip}/login"
    user_portal = portal_url or login_url
    no_store = {"Cache-Control": "no-store"}

    def wants_json(request: Request) -> bool:
        return "application/json" in request.headers.get("accept", "").lower()

    def is_portal(request: Request) -> bool:
        host = request.headers.get("host")
        if not host:
            return True  # HTTP/1.0 without Host: nothing to send it back to
        name = host.strip().lower()
        name = name.rsplit(":", 1)[0] if not name.endswith("]") else name
        return name in own_hosts

    async def online(client_ip: str) -> tuple[bool, str | None]:
        """(logged in, MAC) of the device at client_ip: a fresh login here, or a session
        the platform holds for it here."""
        mac = await _call(mac_for_ip, client_ip) if client_ip else None
        if not mac:
            return False, None
        if logged_in is None:  # the portal alone: its own fresh logins
            return seen.fresh(mac), mac
        try:
            if await _call(logged_in, mac):
                return True, mac
        except Exception as exc:  # the orchestrator is away: captive, as the switch decides
            log.warning("cannot tell whether %s is logged in: %s", mac, exc)
            return seen.fresh(mac, within=OWN_WORD_S), mac
        # The platform says no: its answer stands, but for a login made here so recently
        # that its list of users (cached up to 1 s) may not show it yet. Before, a fresh
        # login counted for 30 s: a device whose session a later login elsewhere (or the
        # user's deletion) had ended was told "You are logged in" (probe of 2026-12-06).
        return seen.fresh(mac, within=OWN_WORD_S), mac

    def answer(request: Request, status: int, title: str, message: str,
               data: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
               *, retry_form: tuple[str | None, str] | None = None) -> Response:
        """JSON {"ok": false, "error"} or a page saying it in words; ``retry_form`` (next,
        user): show the login form again with the message above it."""
        hdrs = {**no_store, **(headers or {})}
        if wants_json(request):
            payload = data if data is not None else {"ok": False, "error": message}
            return JSONResponse(payload, status_code=status, headers=hdrs)
        if retry_form is not None:
            text = pages.login_form(node, retry_form[0], error=f"{title}: {message}",
                                    user=retry_form[1])
        else:
            text = pages.message(title, message, error=status >= 400, back=status >= 400)
        return HTMLResponse(text, status_code=status, headers=hdrs)

    async def login(request: Request, client_ip: str) -> Response:
        retry = lim.hit(client_ip)
        if retry is not None:
            return answer(request, 429, "Too many attempts",
                          f"too many login attempts from {client_ip}; try again in {retry} s",
                          headers={"Retry-After": str(retry)}, retry_form=(None, ""))
        try:
            raw = await _read_body(request)
            user, password, next_url = parse_login(request.headers.get("content-type"), raw)
        except BadRequest as exc:
            return answer(request, exc.status, "The login could not be read", str(exc),
                          retry_form=(None, ""))
        except ClientDisconnect:
            return Response(status_code=400)
        again = (next_url, user)
        mac = await _call(mac_for_ip, client_ip)
        if not mac:
            return answer(request, 400, "Unknown device",
                          f"no DHCP lease for {client_ip}: reconnect to the network (or renew "
                          "its address) and try again")
        try:
            result: AuthResult = await _call(authenticate, user, password, mac)
        except RadiusError as exc:
            log.warning("login %s from %s/%s: RADIUS failed: %s", user, mac, client_ip, exc)
            return answer(request, 503, "Try again later",
                          "authentication service unavailable: please try again in a minute",
                          retry_form=again)
        if not result.accepted:
            log.info("login %s from %s/%s: rejected (%s)", user, mac, client_ip,
                     result.reply_message)
            return answer(request, 401, "Login refused",
                          result.reply_message or "wrong user name or password",
                          retry_form=again)
        t_accept = time.perf_counter()
        try:
            await _call(on_accept, user, mac, client_ip, result.framed_ip)
        except AcceptError as exc:
            log.warning("login %s from %s/%s: accepted, set-up failed: %s", user, mac,
                        client_ip, exc)
            if exc.config_fault:
                return answer(request, exc.status, "Your services need attention",
                              f"your password was accepted, but your services could not be "
                              f"set up: {exc}. You are not online; logging in again will "
                              "not help until your configuration is corrected (or ask your "
                              "operator)", retry_form=again)
            return answer(request, exc.status, "Set-up failed",
                          f"your password was accepted, but your services could not be set "
                          f"up ({exc}); you are not online: please try again in a minute",
                          retry_form=again)
        seen.accepted(mac, user, result.session_timeout)
        ip = result.framed_ip or client_ip
        log.info("login %s from %s/%s: accepted, address %s", user, mac, client_ip, ip)
        if wants_json(request):
            # renew: False, the device is served at once on the address it has; its next
            # DHCP renewal moves it to `ip`, its stable address.
            return JSONResponse({"ok": True, "user": user, "ip": ip, "node": node, "mac": mac,
                                 "renew": False, "radius_ms": round(result.rtt * 1000, 2),
                                 "setup_ms": round((time.perf_counter() - t_accept) * 1000,
                                                   2)},
                                headers=no_store)
        text = pages.logged_in(user, node, ip, next_url)
        if next_url:  # straight back to the page asked for (Post/Redirect/Get)
            return HTMLResponse(text, status_code=303,
                                headers={**no_store, "Location": next_url})
        return HTMLResponse(text, headers=no_store)

    async def capport_api(request: Request, client_ip: str) -> Response:
        is_online, mac = await online(client_ip)
        body = capport.status(not is_online, user_portal,
                              seen.seconds_remaining(mac) if is_online and mac else None)
        return JSONResponse(body, media_type=capport.MEDIA_TYPE,
                            headers={"Cache-Control": "private, no-store"})

    async def endpoint(request: Request) -> Response:
        path = request.url.path
        client_ip = request.client.host if request.client else ""
        if not is_portal(request):
            wanted = str(request.url)
            # Never let the browser cache this answer for the site, nor keep the connection:
            # once logged in, its next request for the site must start afresh (a new DNS
            # lookup and connection), not reuse the one that reached the portal.
            hdrs = {**no_store, "Connection": "close"}
            if (await online(client_ip))[0]:
                # Logged in, yet here: its steering is being installed, or its browser kept
                # the captive answer for this name. Try again in a moment, by itself.
                return HTMLResponse(pages.setting_up(wanted), headers=hdrs)
            # Redirected HTTP to some site: send the browser to the login page.
            return RedirectResponse(f"{login_url}?next={quote(wanted, safe='')}",
                                    status_code=302, headers=hdrs)
        if path == "/login" and request.method == "POST":
            return await login(request, client_ip)
        if request.method not in ("GET", "HEAD"):
            return answer(request, 405, "Not allowed", f"{request.method} {path} is not allowed",
                          headers={"Allow": "GET, HEAD" + (", POST" if path == "/login" else "")})
        if path == CAPPORT_PATH:
            if capport_api_url is None:
                return answer(request, 404, "Not found", "this portal has no captive portal "
                              "API (it needs a TLS certificate)")
            if request.url.scheme != "https":  # RFC 8908 section 3: the API is https only
                return answer(request, 404, "Not found",
                              f"the captive portal API is at {capport_api_url}")
            return await capport_api(request, client_ip)
        if path in ("/", "/login"):
            next_url = _safe_next(request.query_params.get("next"))
            return HTMLResponse(pages.login_form(node, next_url), headers=no_store)
        if path == "/healthz":
            return JSONResponse({"ok": True, "node": node})
        return answer(request, 404, "Not found", f"{path} is not here: see /login")

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=_ALL_METHODS)])
    app.state.node = node
    app.state.limiter = lim
    app.state.logins = seen
    return app
