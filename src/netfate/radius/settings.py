"""RADIUS settings: where FreeRADIUS listens, the two secrets, the Framed-IP pool and the
rate limit of wrong passwords. Set from NETFATE_RADIUS_* variables or flags at the entry
point (netfate.settings).

Two secrets, never the same:

- ``secret``: the RADIUS shared secret between the captive portals (RADIUS clients) and
  FreeRADIUS (clients.conf). It signs and checks every packet.
- ``api_key``: proves to the orchestrator's ``/api/v1/radius/*`` endpoints that FreeRADIUS
  calls them (header ``X-NetFATE-Radius-Key``). Only the FreeRADIUS config and the
  orchestrator know it.

Secrets not given in the settings are generated once and kept in
``<state_dir>/radius-secrets.json`` (mode 0600), so the orchestrator, FreeRADIUS and the
portals started from the same state directory agree on them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import math
import os
import re
import secrets
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from netfate.errors import InvalidInput

SECRETS_FILE = "radius-secrets.json"
API_KEY_HEADER = "X-NetFATE-Radius-Key"
# Written into FreeRADIUS config strings and HTTP headers: no quotes, '$', '\\', spaces.
_SECRET_RE = re.compile(r"^[A-Za-z0-9._~+/=:@-]{16,128}$")
# Bounds of the rate limiter's settings. The back-off ends up in the Reply-Message (253
# bytes: "retry in N s"), and every failure is remembered per MAC and per account.
MAX_SECONDS = 86400  # a window or back-off of at most a day
MAX_FAILURES = 1000
MAX_TRACKED = 1_000_000
# Every idle timeout (this group's, the orchestrator's user_idle_timeout, the testbed's)
# becomes the idle_timeout of a user's OpenFlow flow: 16 bits, as the controller's
# Client.idle_timeout (controller/model.py) bounds it. A user past it was left out of
# their switch's state: logged in, with no connectivity.
IDLE_TIMEOUT_MAX = 65535  # s


class SettingsConflict(ValueError):
    """A value that does not go with another setting's, raised by a field validator of a
    settings group (this one, the orchestrator's). ``also`` names the other fields of the
    group, so that `netfate.settings.load_settings` names their variables (or flags) next
    to the one of the field that failed."""

    def __init__(self, message: str, *also: str) -> None:
        super().__init__(message)
        self.also = also


def _pool_problem(pool: str) -> str | None:
    """Why ``pool`` is no Framed-IP pool (an IPv4 network of /30 or more), or None."""
    try:
        net = ipaddress.ip_network(pool)
    except ValueError as e:
        return f"{pool!r} is not a network: {e}"
    if net.version != 4 or net.prefixlen > 30:
        return f"{pool!r}: give an IPv4 network of /30 or more"
    return None


class RadiusSettings(BaseModel):
    """The ``radius`` group of `netfate.settings.NetfateSettings` (NETFATE_RADIUS_<FIELD>).
    Defaults only: the environment is read at the entry point, not here."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # misspelt: an error; inf: no

    host: str = Field(
        default="127.0.0.1",
        description="Address FreeRADIUS listens on (auth port), and the portals send to")
    port: int = Field(default=1812, ge=1, le=65535, description="FreeRADIUS's auth port (UDP)")
    secret: str = Field(
        default="", repr=False,
        description="RADIUS shared secret; empty: generated into the state directory")
    api_key: str = Field(
        default="", repr=False, description="Key FreeRADIUS shows the orchestrator; empty: "
        "generated into the state directory")
    clients: tuple[str, ...] = Field(
        default=("127.0.0.1",), description="Addresses or networks the portals send from "
        "(FreeRADIUS clients; comma-separated in the variable)")
    pool: str = Field(
        default="10.90.100.0/22", description="Stable Framed-IP-Addresses are allocated "
        "from here for users who have none")
    max_failures: int = Field(
        default=5, ge=1, le=MAX_FAILURES, description="Wrong logins from one client MAC "
        "within failure_window seconds before it is refused for backoff seconds (1-"
        f"{MAX_FAILURES})")
    failure_window: float = Field(default=60.0, gt=0, le=MAX_SECONDS, description="Seconds "
                                  f"(see max_failures; more than 0, at most {MAX_SECONDS})")
    backoff: float = Field(
        default=60.0, ge=0, le=MAX_SECONDS, description="Seconds a client MAC is refused, "
        f"its password unchecked, after max_failures (0-{MAX_SECONDS})")
    max_tracked: int = Field(
        default=10000, ge=1, le=MAX_TRACKED, description="Bound on the client MACs (and, "
        f"apart, the accounts) the rate limiter remembers (1-{MAX_TRACKED})")
    account_max_failures: int = Field(
        default=10, ge=1, le=MAX_FAILURES, description="Wrong logins to one account "
        "(User-Name), from any MAC, within account_failure_window seconds before the "
        f"account is locked for account_backoff seconds (1-{MAX_FAILURES})")
    account_failure_window: float = Field(
        default=300.0, gt=0, le=MAX_SECONDS, description="Seconds (see account_max_failures; "
        f"more than 0, at most {MAX_SECONDS})")
    account_backoff: float = Field(
        default=300.0, ge=0, le=MAX_SECONDS, description="Seconds an account is locked, its "
        f"password unchecked, after account_max_failures (0-{MAX_SECONDS})")
    session_timeout: int | None = Field(
        default=None, ge=1, le=2**31 - 1,
        description="Session-Timeout (s) in Access-Accept; none if unset")
    idle_timeout: int | None = Field(
        default=None, ge=1, le=IDLE_TIMEOUT_MAX, description="Idle-Timeout (s, 1-"
        f"{IDLE_TIMEOUT_MAX}) in Access-Accept; none if unset (the orchestrator's "
        "user_idle_timeout then holds)")
    acct_port: int = Field(default=1813, ge=1, le=65535, validate_default=True,
                           description="FreeRADIUS's accounting port (UDP), not the auth port")
    acct_interim_interval: float = Field(
        default=300.0, ge=0, le=86400, description="Seconds between a session's Accounting "
        "Interim-Updates (RFC 2869 Acct-Interim-Interval); 0: none")
    dae_host: str = Field(
        default="127.0.0.1", description="Address the orchestrator's Dynamic Authorization "
        "server (RFC 5176 Disconnect/CoA) listens on")
    dae_port: int = Field(default=3799, ge=0, le=65535, validate_default=True,
                          description="Its UDP port; 0: no DAE server")
    dae_clients: tuple[str, ...] = Field(
        default=("127.0.0.1",), description="Addresses or networks allowed to send "
        "Disconnect/CoA-Requests (signed with the shared secret; comma-separated in the "
        "variable)")
    reauth_lifetime: float = Field(
        default=3600.0, ge=0, description="Seconds after a login during which the client may "
        "re-authenticate at another node by MAC and session (fast re-authentication, no "
        "password); 0: off")
    reject_delay: float = Field(
        default=1.0, ge=0, le=5, description="FreeRADIUS sends Access-Reject this late "
        "(0-5 s), to slow guessing")
    api_timeout: float = Field(
        default=5.0, gt=0, le=60,
        description="Seconds FreeRADIUS waits for the orchestrator's answer")

    @field_validator("clients", "dae_clients", mode="before")
    @classmethod
    def _split(cls, v: object) -> object:
        return tuple(c.strip() for c in v.split(",") if c.strip()) if isinstance(v, str) else v

    @field_validator("session_timeout", "idle_timeout", mode="before")
    @classmethod
    def _unset(cls, v: object) -> object:
        return None if v == "" else v

    # What check() refuses, refused as the settings are read too, so the error names the
    # variable (NETFATE_RADIUS_HOST=...) at the command's start, not a field later on.
    @field_validator("host", "dae_host")
    @classmethod
    def _address(cls, v: str) -> str:
        try:
            ipaddress.ip_address(v)
        except ValueError:
            raise ValueError(f"{v!r} is not an IP address") from None
        return v

    @field_validator("clients", "dae_clients")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for c in v:
            try:
                ipaddress.ip_network(c, strict=False)
            except ValueError:
                raise ValueError(f"{c!r} is not an address or network") from None
        return v

    @field_validator("secret", "api_key")
    @classmethod
    def _secret(cls, v: str) -> str:
        if v and not _SECRET_RE.fullmatch(v):
            raise ValueError("must be 16-128 characters A-Z a-z 0-9 . _ ~ + / = : @ -")
        return v

    @field_validator("clients")
    @classmethod
    def _some_clients(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("give at least one address or network")
        return v

    @field_validator("pool")
    @classmethod
    def _pool(cls, v: str) -> str:
        problem = _pool_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    # The checks of two fields sit on the later one: the earlier one is in info.data then
    # (absent if it failed itself, and then it has its own error).
    @field_validator("acct_port")
    @classmethod
    def _acct_port(cls, v: int, info: ValidationInfo) -> int:
        if v == info.data.get("port"):
            raise SettingsConflict(f"acct_port {v} is the auth port too: give them different "
                                   "ports", "port")
        return v

    @field_validator("dae_port")
    @classmethod
    def _dae_port(cls, v: int, info: ValidationInfo) -> int:
        # the DAE server and FreeRADIUS both bind UDP: on one address, one port each
        hosts = {info.data.get("host"), info.data.get("dae_host")}
        shared = len(hosts) == 1 or bool(hosts & {"0.0.0.0", "::"})
        for other in ("port", "acct_port"):
            if v and shared and v == info.data.get(other):
                raise SettingsConflict(f"dae_port {v} is FreeRADIUS's {other} too: give "
                                       "the Dynamic Authorization server its own port", other)
        return v

    @field_validator("api_key")
    @classmethod
    def _two_secrets(cls, v: str, info: ValidationInfo) -> str:
        if v and v == info.data.get("secret"):
            raise SettingsConflict("must differ from the shared secret (secret)", "secret")
        return v

    @field_validator("acct_interim_interval")
    @classmethod
    def _interim(cls, v: float) -> float:
        if 0 < v < 1:
            raise ValueError("must be 0 (off) or 1-86400 seconds")
        return v

    def check(self) -> RadiusSettings:
        """These settings if complete and valid (secrets given, every bound the model sets
        as it is read kept: a copy with changes is not validated again); else InvalidInput
        naming the first bad field."""
        for name in ("failure_window", "backoff", "account_failure_window", "account_backoff",
                     "acct_interim_interval", "reauth_lifetime", "reject_delay",
                     "api_timeout"):
            # "nan" parses as a float, and every comparison with it is false: a NaN window
            # or backoff would have passed the checks below and turned the limits off.
            if not math.isfinite(getattr(self, name)):
                raise InvalidInput(f"radius {name} must be a finite number of seconds")
        try:
            ipaddress.ip_address(self.host)
        except ValueError as e:
            raise InvalidInput(f"radius host {self.host!r} is not an IP address") from e
        if not 0 < self.port < 65536:
            raise InvalidInput(f"radius port {self.port} is not a port number")
        if not 0 < self.acct_port < 65536 or self.acct_port == self.port:
            raise InvalidInput(f"radius acct_port {self.acct_port}: give a port number other "
                               "than the auth port")
        if not 0 <= self.dae_port < 65536:
            raise InvalidInput(f"radius dae_port {self.dae_port} is not a port number (0: off)")
        try:
            ipaddress.ip_address(self.dae_host)
        except ValueError as e:
            raise InvalidInput(f"radius dae_host {self.dae_host!r} is not an IP address") from e
        for c in self.dae_clients:
            try:
                ipaddress.ip_network(c, strict=False)
            except ValueError as e:
                raise InvalidInput(f"radius dae client {c!r} is not an address or network") \
                    from e
        if not (self.acct_interim_interval == 0 or 1 <= self.acct_interim_interval <= 86400):
            raise InvalidInput("radius acct_interim_interval must be 0 (off) or 1-86400 seconds")
        if self.idle_timeout is not None and not 0 < self.idle_timeout <= IDLE_TIMEOUT_MAX:
            raise InvalidInput(f"radius idle_timeout must be 1-{IDLE_TIMEOUT_MAX} seconds")
        for name in ("secret", "api_key"):
            if not _SECRET_RE.fullmatch(getattr(self, name)):
                raise InvalidInput(
                    f"radius {name} must be 16-128 characters A-Z a-z 0-9 . _ ~ + / = : @ -"
                )
        if self.secret == self.api_key:
            raise InvalidInput("radius secret and api_key must differ")
        if not self.clients:
            raise InvalidInput("radius clients: give at least one address or network")
        for c in self.clients:
            try:
                ipaddress.ip_network(c, strict=False)
            except ValueError as e:
                raise InvalidInput(f"radius client {c!r} is not an address or network") from e
        problem = _pool_problem(self.pool)
        if problem:
            raise InvalidInput(f"radius pool {problem}")
        if self.max_failures < 1 or self.failure_window <= 0 or self.backoff < 0:
            raise InvalidInput("radius rate limit: max_failures >= 1, failure_window > 0, "
                               "backoff >= 0")
        if self.account_max_failures < 1 or self.account_failure_window <= 0 \
                or self.account_backoff < 0:
            raise InvalidInput("radius account rate limit: account_max_failures >= 1, "
                               "account_failure_window > 0, account_backoff >= 0")
        if self.max_tracked < 1:
            raise InvalidInput("radius max_tracked must be at least 1")
        if self.session_timeout is not None and not 0 < self.session_timeout <= 2**31 - 1:
            raise InvalidInput("radius session_timeout must be 1-2147483647 seconds")
        if not 0 <= self.reject_delay <= 5:
            raise InvalidInput("radius reject_delay must be 0-5 seconds")
        if not 0 < self.api_timeout <= 60:
            raise InvalidInput("radius api_timeout must be in (0, 60] seconds")
        try:  # the rest of what the model refuses as it is read (the upper bounds)
            type(self).model_validate(self.model_dump())
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise InvalidInput(f"radius {where}: {first['msg']}") from None
        return self

    def resolve(self, state_dir: Path) -> RadiusSettings:
        """These settings with missing secrets taken from (or first generated into) the
        state directory's secrets file, checked."""
        if self.secret and self.api_key:
            return self.model_copy().check()
        path = Path(state_dir) / SECRETS_FILE
        stored = _read_secrets(path)
        if stored is None:
            stored = _create_secrets(path, {"secret": secrets.token_urlsafe(24),
                                            "api_key": secrets.token_urlsafe(32)})
        return self.model_copy(update={"secret": self.secret or stored["secret"],
                                       "api_key": self.api_key or stored["api_key"]}).check()

    def __repr__(self) -> str:  # never print the secrets
        return (f"RadiusSettings(host={self.host!r}, port={self.port}, clients={self.clients!r}, "
                f"pool={self.pool!r}, secret=***, api_key=***)")


def _read_secrets(path: Path) -> dict[str, str] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise InvalidInput(f"{path}: unreadable RADIUS secrets ({e}); remove it to renew") from e
    if not (isinstance(data, dict) and all(isinstance(data.get(k), str) and data[k]
                                           for k in ("secret", "api_key"))):
        raise InvalidInput(f"{path}: not the RADIUS secrets; remove it to renew them")
    return {"secret": data["secret"], "api_key": data["api_key"]}


def _create_secrets(path: Path, values: dict[str, str]) -> dict[str, str]:
    """Write the secrets file if it does not exist yet (mode 0600, atomically); whoever
    created it first wins, and everyone returns what is in it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(values, f)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    stored = _read_secrets(path)
    assert stored is not None
    return stored
