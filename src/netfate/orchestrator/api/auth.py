"""The gate in front of the API and the UI (netfate.api_auth has the rules and the token).

- ``/api/v1/*``: ``Authorization: Bearer <token>`` or 401 (a problem body, with
  ``WWW-Authenticate: Bearer``, RFC 6750 section 3). Open: the health check, FreeRADIUS's
  ``/radius/*`` (its own key), a bundle's content with its signed ``?key=``.
- ``/ui/*``: the session cookie the login form sets; without it a page redirects to the login
  form (303), and an htmx request gets 401 with ``HX-Redirect`` to it. POSTs other than the
  login itself also need the session's CSRF token (header X-NetFATE-CSRF), 403 otherwise.
- ``/``: redirects to the UI.
"""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from netfate import api_auth
from netfate.orchestrator.api.problems import problem

_CONTENT = re.compile(r"^/api/v1/vnf_packages/([0-9a-fA-F]{64})/content$")
UI_OPEN = ("/ui/login", "/ui/static/")
LOGIN = "/ui/login"


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def session_of(headers: dict[str, str]) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # a malformed cookie header is no session
        return None
    m = jar.get(api_auth.SESSION_COOKIE)
    return m.value if m is not None else None


class OperatorAuth:
    """ASGI middleware; `token()` gives the orchestrator's token (None before it started)."""

    def __init__(self, app: ASGIApp, token: object) -> None:
        self.app = app
        self._token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        deny = self._check(path, scope)
        if deny is None:
            await self.app(scope, receive, send)
        else:
            await deny(scope, receive, send)

    def _check(self, path: str, scope: Scope) -> Response | None:
        if path == "/":
            return RedirectResponse("/ui/", status_code=307)
        api = path == "/api/v1" or path.startswith("/api/v1/")
        ui = path == "/ui" or path.startswith("/ui/")
        if not (api or ui) or path in api_auth.OPEN_PATHS or path.startswith(
                api_auth.OPEN_PREFIXES) or path.startswith(UI_OPEN):
            return None
        token: str | None = self._token()  # type: ignore[operator]
        if not token:
            return problem(503, "the orchestrator is starting; retry shortly")
        headers = _headers(scope)
        if sum(k.lower() == b"authorization" for k, _ in scope.get("headers", [])) > 1:
            # RFC 9110 §5.3: Authorization is a singleton field; which one counts is ambiguous
            return problem(400, "Authorization is given more than once: send one")
        if api:
            return self._api(path, scope, headers, token)
        return self._ui(scope, headers, token)

    @staticmethod
    def _api(path: str, scope: Scope, headers: dict[str, str], token: str) -> Response | None:
        if api_auth.bearer_ok(headers.get("authorization"), token):
            return None
        m = _CONTENT.fullmatch(path)
        if m and scope.get("method") in ("GET", "HEAD"):
            key = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("key", [""])[0]
            if key and api_auth.bundle_key_ok(token, m.group(1), key):
                return None
        why = ("a wrong operator token" if headers.get("authorization")
               else "no operator token")
        r = problem(401, f"{why}: send 'Authorization: Bearer <token>'; the token is "
                         "NETFATE_API_TOKEN or the file api-token in the orchestrator's "
                         "state directory")
        r.headers["WWW-Authenticate"] = 'Bearer realm="netfate"'
        return r

    @staticmethod
    def _ui(scope: Scope, headers: dict[str, str], token: str) -> Response | None:
        session = session_of(headers)
        if not api_auth.session_ok(token, session):
            if headers.get("hx-request"):
                return Response(status_code=401, headers={"HX-Redirect": LOGIN})
            return RedirectResponse(LOGIN, status_code=303)
        if scope.get("method") not in ("GET", "HEAD") and not api_auth.csrf_ok(
                token, session, headers.get(api_auth.CSRF_HEADER.lower())):
            return problem(403, "missing or wrong CSRF token: reload the page")
        return None
