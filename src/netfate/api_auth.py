"""Operator authentication of the orchestrator's API and UI: one place for the token.

The orchestrator has one operator token: ``NETFATE_API_TOKEN`` if set, else generated once
into ``<state_dir>/api-token`` (mode 0600) at its first start. Every client of ``/api/v1``
sends it as ``Authorization: Bearer <token>`` (RFC 6750 section 2.1); `auth_headers` and
`BearerAuth` find it for them:

1. ``NETFATE_API_TOKEN`` (settings ``orchestrator.api_token``, the variable the
   orchestrator reads too);
2. the token file of a state directory the caller names (an access service's
   ``--radius-state-dir``);
3. the token file of the testbed's orchestrator (``<run_dir>/orchestrator/api-token``, the
   run dir in use and the one the settings name);
4. the token file of the default state directory (``orchestrator.state_dir``).

Left open: ``/api/v1/health`` (readiness probes), ``/api/v1/radius/*`` (FreeRADIUS proves
itself there with its own key) and a bundle's content when the URL carries the key the
orchestrator signed it with (`bundle_key`): agents fetch the URLs they are sent over the bus,
so a node needs no operator token.

The UI's login form takes the token and sets a session cookie (`session_value`): HMAC-signed
with the token, so it needs no server-side store and dies with the token. Its POST actions
also carry a CSRF token (`csrf_value`) derived from the session.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from netfate.settings import NetfateSettings

TOKEN_FILE = "api-token"
SCHEME = "Bearer"
SESSION_COOKIE = "netfate_session"
CSRF_HEADER = "X-NetFATE-CSRF"
SESSION_TTL_S = 12 * 3600
# Paths under /api/v1 that need no operator token (see the module docstring).
OPEN_PATHS = ("/api/v1/health",)
OPEN_PREFIXES = ("/api/v1/radius/",)


def token_path(state_dir: Path) -> Path:
    return Path(state_dir) / TOKEN_FILE


def read_token(state_dir: Path) -> str | None:
    """The token in `state_dir`'s token file; None if there is none or it is unreadable."""
    try:
        tok = token_path(state_dir).read_text().strip()
    except OSError:
        return None
    return tok or None


def ensure_token(state_dir: Path, given: str = "") -> str:
    """The orchestrator's token: `given` if not empty, else the one in `state_dir` (created
    with mode 0600 if there is none; whoever creates it first wins)."""
    if given:
        return given
    found = read_token(state_dir)
    if found:
        return found
    path = token_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    found = read_token(state_dir)
    if not found:
        raise OSError(f"{path}: cannot read the API token just written")
    return found


def candidate_files(settings: NetfateSettings | None = None,
                    state_dir: Path | None = None) -> list[Path]:
    """Where clients look for the token file, in order."""
    from netfate import paths

    s = settings or _settings()
    out = [token_path(state_dir)] if state_dir is not None else []
    for d in (paths.run_dir(), s.paths.run_dir):  # the run dir in use, the configured one
        out.append(token_path(d / "orchestrator"))
    out.append(token_path(s.orchestrator.state_dir))
    return list(dict.fromkeys(out))


def find_token(settings: NetfateSettings | None = None,
               state_dir: Path | None = None) -> str | None:
    """The operator token a client sends (see the module docstring's order); None if none
    is found (the orchestrator then answers 401)."""
    s = settings or _settings()
    if s.orchestrator.api_token:
        return s.orchestrator.api_token
    for p in candidate_files(s, state_dir):
        tok = read_token(p.parent)
        if tok:
            return tok
    return None


def auth_headers(settings: NetfateSettings | None = None,
                 state_dir: Path | None = None) -> dict[str, str]:
    """``{"Authorization": "Bearer <token>"}``, or {} if no token is found."""
    tok = find_token(settings, state_dir)
    return {"Authorization": f"{SCHEME} {tok}"} if tok else {}


class BearerAuth(httpx.Auth):
    """httpx auth that adds the operator token. Found lazily, at the first request that
    finds one (a client made before the orchestrator's first start still works after)."""

    def __init__(self, token: str | None = None, state_dir: Path | None = None,
                 settings: NetfateSettings | None = None) -> None:
        self._token = token
        self._given = bool(token)
        self._state_dir = state_dir
        self._settings = settings

    def token(self) -> str | None:
        if not self._token:
            self._token = find_token(self._settings, self._state_dir)
        return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        tok = self.token()
        if tok:
            request.headers["Authorization"] = f"{SCHEME} {tok}"
        response = yield request
        if response.status_code == 401 and not self._given and self._renewed(tok):
            # The orchestrator was started afresh with a new token (a testbed down and up):
            # once more with the token it has now.
            request.headers["Authorization"] = f"{SCHEME} {self._token}"
            yield request

    def _renewed(self, sent: str | None) -> bool:
        self._token = None
        now = self.token()
        return bool(now) and now != sent


def _settings() -> NetfateSettings:
    from netfate.settings import load_settings

    return load_settings()


# -- the server's checks ------------------------------------------------------------------------
def _mac(token: str, what: str) -> str:
    return hmac.new(token.encode(), what.encode(), hashlib.sha256).hexdigest()


def bearer_ok(header: str | None, token: str) -> bool:
    """Whether an Authorization header value carries `token` (constant-time)."""
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    return scheme.lower() == SCHEME.lower() and hmac.compare_digest(value.strip().encode(),
                                                                   token.encode())


def bundle_key(token: str, sha256: str) -> str:
    """The key that opens one bundle's content URL (``?key=``) without the token."""
    return _mac(token, f"bundle:{sha256.lower()}")[:32]


def bundle_key_ok(token: str, sha256: str, key: str) -> bool:
    return hmac.compare_digest(bundle_key(token, sha256).encode(), key.encode())


def session_value(token: str, now: float | None = None) -> str:
    """A UI session cookie value: its expiry and an HMAC of it under the token."""
    exp = int((time.time() if now is None else now) + SESSION_TTL_S)
    return f"{exp}.{_mac(token, f'session:{exp}')}"


def session_ok(token: str, value: str | None, now: float | None = None) -> bool:
    if not value or "." not in value:
        return False
    exp, _, sig = value.partition(".")
    # ASCII digits only, bounded: "²".isdigit() is true and int() refuses it (a 500 then),
    # and int() refuses more than 4300 digits.
    if not (exp.isascii() and exp.isdigit() and len(exp) <= 12) \
            or int(exp) < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(sig.encode(), _mac(token, f"session:{exp}").encode())


def csrf_value(token: str, session: str) -> str:
    """The CSRF token of a UI session: the UI's POSTs send it in `CSRF_HEADER` (or a form
    field), which a cross-site page cannot read."""
    return _mac(token, f"csrf:{session}")[:40]


def csrf_ok(token: str, session: str | None, value: str | None) -> bool:
    if not session or not value:
        return False
    return hmac.compare_digest(csrf_value(token, session).encode(), value.encode())
