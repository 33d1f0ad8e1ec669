"""The orchestrator's side of RADIUS: FreeRADIUS (rlm_rest) asks it about each login, and it
answers from the NFVI database.

FreeRADIUS cannot verify the users' scrypt hashes itself, so it sends the PAP login
(User-Name, User-Password, Calling-Station-Id, NAS-Identifier) to the orchestrator, which
checks the rate limit of the client's MAC, verifies the password (repo.authenticate_user) and
answers with rlm_rest's JSON: reply attributes, and the HTTP status that decides
(200 accept, 401 reject).

A reject says little: "authentication failed" for an unknown user and for a wrong password
alike, so names can't be probed. The orchestrator's log (never the password) says which.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from netfate.credentials import REAUTH_PREFIX
from netfate.db import Database, repo
from netfate.db.models import User
from netfate.db.passwords import hash_password, needs_rehash
from netfate.radius.pool import pick_address
from netfate.radius.ratelimit import FailureLimiter, account_key, client_key
from netfate.radius.settings import RadiusSettings

log = logging.getLogger("netfate.radius")

FAILED = "authentication failed: wrong user name or password"
ACCEPTED = "authenticated"

RadiusString = Annotated[str, StringConstraints(max_length=253)]  # an attribute's limit
_MAC_FORM = re.compile(r"[0-9A-Fa-f]{2}([-:][0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{12}"
                       r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}"
                       r"|[0-9A-Fa-f]{6}-[0-9A-Fa-f]{6}")  # HP/Aruba


def octets_as_text(value: str) -> str:
    """The text of a string attribute as FreeRADIUS 3.2's rlm_rest encodes it in JSON: each
    octet over 0x7F as its own escape, so the UTF-8 "ä" (C3 A4) arrives as "\\u00C3\\u00A4"
    and parses as "Ã¤", the octets read as Latin-1. Those octets decoded as UTF-8 are what
    the user typed (RFC 2865 §5: text is UTF-8). A value that is not such a sequence (a
    caller that sent real Unicode) is kept as it came. Measured with strace on FreeRADIUS
    3.2.1, Debian 12; without this no password with a non-ASCII character ever worked."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


class RestAttribute(BaseModel):
    """One attribute as rlm_rest encodes it (body = 'json'): its type and its values (253
    octets at most each, RFC 2865 §5, as text: see `octets_as_text`)."""

    model_config = ConfigDict(extra="ignore")
    type: str | None = None
    value: list[RadiusString] = Field(min_length=1, max_length=16)

    @field_validator("value")
    @classmethod
    def _utf8(cls, v: list[str]) -> list[str]:
        return [octets_as_text(x) for x in v]


class RestRequest(BaseModel):
    """What FreeRADIUS sends: the Access-Request's attributes. Others are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    user_name: RestAttribute = Field(alias="User-Name")
    user_password: RestAttribute = Field(alias="User-Password")
    calling_station_id: RestAttribute | None = Field(None, alias="Calling-Station-Id")
    nas_identifier: RestAttribute | None = Field(None, alias="NAS-Identifier")

    @field_validator("calling_station_id")
    @classmethod
    def _station_mac(cls, v: RestAttribute | None) -> RestAttribute | None:
        """A MAC address (RFC 3580 §3.21: "00-10-A4-23-19-C0"; colons, twelve hex digits,
        Cisco's dotted or HP's "0010a4-2319c0" as some NASes send it), made lower case with
        colons: the form sessions keep, so a fast re-authentication compares like with like.
        An empty one is as none. ValueError for anything else."""
        if v is None or v.value == [""]:
            return None  # an empty Calling-Station-Id says nothing: as if not sent
        macs = []
        for raw in v.value:
            digits = raw.replace("-", "").replace(":", "").replace(".", "")
            if not _MAC_FORM.fullmatch(raw) or len(digits) != 12:
                raise ValueError("Calling-Station-Id must be the station's MAC address "
                                 "(such as 02-00-00-00-00-01)")
            macs.append(":".join(digits[i:i + 2] for i in range(0, 12, 2)).lower())
        return v.model_copy(update={"value": macs})

    def login(self) -> AuthRequest:
        def first(a: RestAttribute | None) -> str | None:
            return a.value[0] if a is not None else None

        return AuthRequest(user=self.user_name.value[0], password=self.user_password.value[0],
                     mac=first(self.calling_station_id), nas=first(self.nas_identifier))


@dataclass(frozen=True)
class AuthRequest:
    user: str
    password: str = field(repr=False)
    mac: str | None = None
    nas: str | None = None


@dataclass(frozen=True)
class AuthDecision:
    """The answer to FreeRADIUS: an HTTP status (200 go on/accept, 401 reject) and the
    attributes, in rlm_rest's JSON response format."""

    accept: bool
    message: str
    framed_ip: str | None = None
    session_timeout: int | None = None
    control: dict[str, str] = field(default_factory=dict)
    idle_timeout: int | None = None

    @property
    def status(self) -> int:
        return 200 if self.accept else 401

    def body(self) -> dict[str, Any]:
        # do_xlat off: nothing we answer is a FreeRADIUS expansion.
        out: dict[str, Any] = {}
        if self.message:
            out["reply:Reply-Message"] = {"value": [self.message], "do_xlat": False}
        if self.framed_ip is not None:
            out["reply:Framed-IP-Address"] = self.framed_ip
        if self.session_timeout is not None:
            out["reply:Session-Timeout"] = self.session_timeout
        if self.idle_timeout is not None:
            out["reply:Idle-Timeout"] = self.idle_timeout
        for k, v in self.control.items():
            out[f"control:{k}"] = v
        return out




def reauth_token(api_key: str, session_id: str, mac: str) -> str:
    """The secret a node presents for a client's fast re-authentication: bound to the
    session and the client's MAC, known only to the orchestrator (it holds api_key)."""
    digest = hmac.new(api_key.encode(), f"{session_id}|{mac.lower()}".encode(),
                      hashlib.sha256).hexdigest()
    return REAUTH_PREFIX + digest[:48]


class RadiusBackend:
    """Thread-safe: the API calls it from its worker threads."""

    def __init__(self, db: Database, settings: RadiusSettings) -> None:
        self.db = db
        self.settings = settings
        self.limiter = FailureLimiter(settings.max_failures, settings.failure_window,
                                      settings.backoff, settings.max_tracked)
        # Per account as well: a device that changes its MAC still meets this one.
        self.accounts = FailureLimiter(settings.account_max_failures,
                                       settings.account_failure_window,
                                       settings.account_backoff, settings.max_tracked)
        self._alloc = threading.Lock()

    def authorize(self, login: AuthRequest) -> AuthDecision:
        """Before the password is looked at: refuse a client that is backing off."""
        blocked = self._blocked(login)
        if blocked is not None:
            return blocked
        return AuthDecision(True, "", control={"Auth-Type": "rest"})

    def authenticate(self, login: AuthRequest) -> AuthDecision:
        blocked = self._blocked(login)
        if blocked is not None:
            return blocked
        key = client_key(login.mac, login.nas)
        if login.password.startswith(REAUTH_PREFIX):
            return self._reauthenticate(login, key)
        # A read-only transaction: the password check (scrypt, ~50 ms) holds no write lock,
        # so logins and every other writer (plans, telemetry) do not queue behind it.
        with self.db.session(read_only=True) as s:
            user = repo.authenticate_user(s, login.user, login.password, rehash=False)
            known = user is not None or (
                "\x00" not in login.user and s.get(User, login.user) is not None)
            framed_ip = user.framed_ip if user is not None else None
            checked = user.password_hash if user is not None else None
        if checked is not None and needs_rehash(checked):  # parameters raised since
            new = hash_password(login.password)
            with self.db.session() as s:
                repo.replace_password_hash(s, login.user, checked, new)
        if user is None:
            # Unknown names count too: locking only real accounts would tell them apart.
            backoff = self.limiter.failure(key)
            locked = self.accounts.failure(account_key(login.user))
            log.info("RADIUS reject user=%r mac=%r nas=%r: %s%s%s", login.user, login.mac,
                     login.nas, "wrong password" if known else "unknown user",
                     f"; {key} backs off {backoff} s" if backoff else "",
                     f"; the account is locked for {locked} s" if locked else "")
            wait = max(backoff or 0, locked or 0)
            msg = FAILED if not wait else f"{FAILED}; too many attempts, retry in {wait} s"
            return AuthDecision(False, msg)
        self.limiter.success(key)
        self.accounts.success(account_key(login.user))
        if framed_ip is None:
            framed_ip = self._allocate(login.user)
        log.info("RADIUS accept user=%r mac=%r nas=%r framed_ip=%s", login.user, login.mac,
                 login.nas, framed_ip)
        return AuthDecision(True, ACCEPTED, framed_ip=framed_ip,
                            session_timeout=self.settings.session_timeout,
                            idle_timeout=self.settings.idle_timeout)

    def _reauthenticate(self, login: AuthRequest, key: str) -> AuthDecision:
        """Fast re-authentication: the password is the token of the user's active session
        (reauth_token), from the same MAC, within the re-authentication lifetime."""
        why = ""
        with self.db.session(read_only=True) as s:  # reads only: no write lock to wait for
            cur = repo.active_session(s, login.user) if "\x00" not in login.user else None
            framed_ip = None
            if cur is None:
                why = "no active session"
            elif self.settings.reauth_lifetime <= 0:
                why = "fast re-authentication is off"
            elif time.time() - cur.started_at > self.settings.reauth_lifetime:
                why = "the session is too old: log in again"
            elif (login.mac or "").lower() != (cur.mac or "").lower():
                why = "another device's session"
            elif not hmac.compare_digest(
                    login.password, reauth_token(self.settings.api_key, cur.id, cur.mac or "")):
                why = "wrong session token"
            else:
                user = repo.get_user(s, login.user)
                framed_ip = user.framed_ip
        if why:
            backoff = self.limiter.failure(key)
            log.info("RADIUS re-auth reject user=%r mac=%r nas=%r: %s", login.user, login.mac,
                     login.nas, why)
            return AuthDecision(False, f"fast re-authentication refused: {why}"
                            + (f"; retry in {backoff} s" if backoff else ""))
        self.limiter.success(key)
        if framed_ip is None:
            framed_ip = self._allocate(login.user)
        log.info("RADIUS re-auth accept user=%r mac=%r nas=%r", login.user, login.mac, login.nas)
        return AuthDecision(True, ACCEPTED, framed_ip=framed_ip,
                            session_timeout=self.settings.session_timeout,
                            idle_timeout=self.settings.idle_timeout)

    def _blocked(self, login: AuthRequest) -> AuthDecision | None:
        """A refusal if the client's MAC backs off or the account is locked (fast
        re-authentication only meets the MAC's limit: its token is not guessable, and a
        locked account must not strand a roaming user mid-session)."""
        key = client_key(login.mac, login.nas)
        wait = self.limiter.retry_after(key)
        if wait is None and not login.password.startswith(REAUTH_PREFIX):
            wait = self.accounts.retry_after(account_key(login.user))
            key = "the account" if wait is not None else key
        if wait is None:
            return None
        log.info("RADIUS reject user=%r mac=%r nas=%r: %s backing off, %d s left",
                 login.user, login.mac, login.nas, key, wait)
        return AuthDecision(False, f"too many attempts, retry in {wait} s")

    def _allocate(self, name: str) -> str:
        """The user's stable address, allocated once from the pool and stored with them.
        One allocation at a time, each in its own transaction."""
        with self._alloc, self.db.session() as s:
            user = repo.get_user(s, name)
            if user.framed_ip:
                return user.framed_ip
            taken = {ip for ip in s.scalars(sa.select(User.framed_ip)) if ip}
            ip = pick_address(name, self.settings.pool, taken)
            repo.update_user(s, name, framed_ip=ip)
            return ip
