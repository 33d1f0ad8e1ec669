"""Request and response bodies."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from netfate import credentials
from netfate.owners import check_user_name
from netfate.validators import (
    NAME_PATTERN,
    InstanceId,
    IPv4Prefix,
    Name,
    PortNumber,
    StationIPv4,
    UnicastMac,
)

# Kept for callers that match names with a pattern; the bodies below use netfate.validators'
# types (ASCII only: a pattern's \d would take any script's digits).
NAME = NAME_PATTERN


# Path parameters, with examples for the docs page and for API fuzzers (schemathesis) to
# reach existing rows.
USER = Path(description="a user's name", examples=["user1"], pattern=NAME_PATTERN)
NODE = Path(description="a node's name", examples=["cpe1"], pattern=NAME_PATTERN)
IID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,97}$"
IID = Path(description="an NF instance's id (node-owner-nf)", examples=["cpe1-user1-firewall"],
           pattern=IID_PATTERN)
# List filters: a value no row could have is refused (422), not answered with [] (`?node=%00`
# looked like a node with nothing on it: probe of 2026-12-05).
NodeFilter = Annotated[str | None, Query(description="only this node's rows",
                                         pattern=NAME_PATTERN)]
OwnerFilter = Annotated[str | None, Query(description="only this user's rows",
                                          pattern=NAME_PATTERN)]
IidFilter = Annotated[str | None, Query(description="only this NF instance's rows",
                                        pattern=IID_PATTERN)]


MAX_JSON_DEPTH = 32


def _shallow(value: Any) -> Any:
    """Free-form JSON (NF config, matches, filters) nests at most MAX_JSON_DEPTH levels: deeper
    documents would be stored and then fail to serialise (a 500 on every later read). Its
    numbers are finite: Python's JSON reader takes NaN, Infinity and 1e309 (as inf), which
    are no JSON numbers; the database stored them as null (or refused them), so what was
    accepted was not what was stored."""
    stack = [(value, 1)]
    while stack:
        x, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(x, float) and not math.isfinite(x):
            raise ValueError(f"{x!r} is not a JSON number (NaN, Infinity and numbers beyond "
                             "1.8e308 are not)")
        if isinstance(x, dict):
            stack.extend((y, depth + 1) for y in x.values())
        elif isinstance(x, list):
            stack.extend((y, depth + 1) for y in x)
    return value


Doc = Annotated[dict[str, Any], AfterValidator(_shallow)]
Docs = Annotated[dict[str, dict[str, Any]], AfterValidator(_shallow)]


class Body(BaseModel):
    """A request body: no unknown fields, and strict types (pydantic's lax mode would take
    `true` or "5" or 5.0 for an integer and 0 or "false" for a boolean, storing what the
    client never wrote: a priority of 1 from `true`). An integer is a JSON integer, a boolean
    a JSON boolean; a float field still takes an integer."""

    model_config = ConfigDict(extra="forbid", strict=True)


class TSRuleBody(Body):
    """A TS rule (NNF paper, Table I) but its id (in the path). Checked as
    controller.model.TSRule; output names switch ports or normal/flood/controller/in_port."""

    priority: int = Field(default=100, ge=1, le=64535, examples=[100])
    match: Doc = Field(default_factory=dict, examples=[
        {"in_port": "fate-c1-h1", "eth_src": "02:aa:00:00:00:01"}])
    output: list[str] = Field(default_factory=list, max_length=64, examples=[["fate-c1-up"]])


class TrafficClass(Body):
    """Traffic of the user that matches crosses `nfs` (in required_nfs order); traffic no
    class matches crosses the required NFs that no class names. Higher priority wins."""

    name: Name = Field(examples=["web"])
    priority: int = Field(ge=1, le=799, examples=[100])
    ip_proto: int | None = Field(default=None, ge=0, le=255, examples=[6])
    remote_port: PortNumber | None = Field(default=None, examples=[80])
    remote: IPv4Prefix | None = Field(default=None, max_length=43, examples=["10.255.0.0/16"])
    nfs: list[Name] = Field(min_length=1, max_length=16, examples=[["packet-inspector"]])

    @field_validator("nfs")
    @classmethod
    def _once_each(cls, v: list[str]) -> list[str]:
        twice = sorted({n for n in v if v.count(n) > 1})
        if twice:  # as required_nfs refuses it
            raise ValueError(f"names {twice} more than once")
        return v


PASSWORD_DOC = ("1-128 bytes of UTF-8 in NFC: letters, marks, digits, punctuation, symbols and "
                "spaces (RFC 8265 OpaqueString), no white space at either end, not starting "
                "with 'reauth:' (netfate.credentials)")

# For the docs (a byte limit, checked by _password, whose error names the rule: pydantic's own
# max_length would count characters).
_PASSWORD_MAX: dict[str, Any] = {"maxLength": credentials.PASSWORD_MAX_BYTES}


def _password(v: str | None) -> str | None:
    why = None if v is None else credentials.password_problem(v)
    if why:
        raise ValueError(why)
    return v


class UserCreate(Body):
    # Name is the same rule as credentials.USERNAME_PATTERN, with errors that say ASCII.
    name: Name = Field(examples=["user2"],
                       description=f"a user name: {credentials.USERNAME_RULE}")
    password: str = Field(min_length=4, examples=["secret2"], description=PASSWORD_DOC,
                          json_schema_extra=_PASSWORD_MAX)
    required_nfs: list[Name] = Field(default=[], max_length=16, examples=[["firewall"]])
    nf_config: Docs = {}
    classifiers: list[TrafficClass] = Field(default=[], max_length=32)

    _check_password = field_validator("password")(_password)
    # "operator" owns the operator's NFs (troubleshooting probes): no user may be named so.
    _check_name = field_validator("name")(check_user_name)


class UserPatch(Body):
    password: str | None = Field(default=None, min_length=4, description=PASSWORD_DOC,
                                 json_schema_extra=_PASSWORD_MAX)
    required_nfs: list[Name] | None = Field(default=None, max_length=16)
    nf_config: Docs | None = None
    classifiers: list[TrafficClass] | None = Field(default=None, max_length=32)

    _check_password = field_validator("password")(_password)


class NodePatch(Body):
    """The operator's administrative state of a node: down takes it out of placement (its
    NFs are moved away as from a node that went offline); up puts it back."""

    admin_down: bool = Field(examples=[False])


class Associate(Body):
    """A station (a unicast MAC, a host's IPv4) at a node: checked strictly here, so what
    is stored can always be put in a switch's state (netfate.validators)."""

    node: Name = Field(examples=["cpe1"])
    mac: UnicastMac | None = Field(default=None, examples=["02:00:00:00:00:01"])
    ip: StationIPv4 | None = Field(default=None, examples=["10.0.0.2"])
    # A portal login (after Access-Accept): a new RADIUS accounting session, with the
    # Accept's Session-Timeout and Idle-Timeout (seconds). Otherwise the user's login goes on.
    login: bool = False
    session_timeout: int | None = Field(default=None, ge=1, le=2**31 - 1)
    idle_timeout: int | None = Field(default=None, ge=1, le=65535)


class Instantiate(Body):
    nf: Name = Field(examples=["rate-limiter"])
    owner: Name = Field(examples=["user1"])
    node: Name = Field(examples=["cpe1"])
    config: Doc = Field(default={}, examples=[{}])


class MigrateBody(Body):
    node: Name = Field(examples=["cpe2"])


class UpdateBody(Body):
    config: Doc = Field(examples=[{"default_in": "allow"}])


_URI_CHARS = re.compile(r"[\x21-\x7e]+")


# SOL003 LcmOperationType and LcmOperationStateType values NetFATE has (db.models'
# LcmOperation and OpState; a unit test keeps them equal). Literals, not the enums: a strict
# body takes a JSON string for a Literal.
OpTypeName = Literal["INSTANTIATE", "TERMINATE", "MIGRATE", "UPDATE", "RELEASE"]
OpStateName = Literal["PROCESSING", "COMPLETED", "FAILED_TEMP", "FAILED", "ROLLING_BACK",
                      "ROLLED_BACK"]
MAX_FILTER_IDS = 1000


class SubscriptionFilter(Body):
    """Which operation occurrences a subscription is notified of: those whose operation,
    state and instance are each in the list given (a list left out: any). The part of SOL003's
    LccnSubscriptionRequest filter NetFATE matches on (ETSI GS NFV-SOL 003, 5.5.3.12).
    Unknown keys are refused: a misspelt `operationState` would otherwise match everything."""

    operationTypes: list[OpTypeName] | None = Field(default=None, min_length=1, max_length=5)
    operationStates: list[OpStateName] | None = Field(default=None, min_length=1,
                                                      max_length=6)
    vnfInstanceIds: list[InstanceId] | None = Field(default=None, min_length=1,
                                                    max_length=MAX_FILTER_IDS)

    @field_validator("operationTypes", "operationStates", "vnfInstanceIds")
    @classmethod
    def _once_each(cls, v: list[str] | None) -> list[str] | None:
        """Each value once, as a user's required NFs are (a repeat says nothing more, and
        was most likely meant as another value)."""
        if v is not None and len(set(v)) != len(v):
            twice = sorted({x for x in v if v.count(x) > 1})
            raise ValueError(f"{twice} given more than once")
        return v


_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


class SubscriptionCreate(Body):
    callbackUri: str = Field(min_length=1, max_length=2048,
                             examples=["http://127.0.0.1:8080/netfate/notifications"])
    filter: SubscriptionFilter = Field(default_factory=SubscriptionFilter,
                                       examples=[{"operationStates": ["COMPLETED", "FAILED"]}])

    @field_validator("callbackUri")
    @classmethod
    def _http_url(cls, v: str) -> str:
        """An http(s) URL with a host and a valid port (urlsplit raises on "http://[" or
        a port that is not a number in range, which would otherwise surface as a 500).
        Printable ASCII only, no white space: urlsplit silently drops tabs and newlines and
        strips leading blanks, so such a URI would pass here and then be refused by the
        HTTP client at every notification; and not port 0, which nothing listens on."""
        if not _URI_CHARS.fullmatch(v):
            raise ValueError(f"{v!r} is not a URL: printable ASCII only, without white space "
                             "or control characters (percent-encode them)")
        try:
            parts = urlsplit(v)
            port = parts.port  # raises ValueError when out of range or not a number
        except ValueError as exc:
            raise ValueError(f"not a valid URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{v!r} is not an http(s) URL with a host")
        if "@" in parts.netloc:  # GET /subscriptions would show them to every operator
            raise ValueError("a callback URL with credentials (user:password@) is not "
                             "stored: give the endpoint its own way to know the orchestrator")
        if port == 0:
            raise ValueError(f"{v!r}: port 0 is not a port a callback can listen on")
        if "#" in v:  # RFC 3986 §3.5: the client's own; no request carries it
            raise ValueError(f"{v!r} has a fragment ('#...'), which never reaches the "
                             "callback's server: leave it out")
        if "%" in parts.netloc.rpartition("@")[2].partition("]")[0]:
            # RFC 6874 zone: names one of the orchestrator's interfaces, meaningless to
            # anyone reading the subscription, and the callback networks are addresses
            raise ValueError(f"{v!r}: an IPv6 zone ('%25...') is not taken; give a global "
                             "or loopback address")
        if _BAD_PERCENT.search(v):  # RFC 3986 §2.1: "%" starts two hex digits
            raise ValueError(f"{v!r} has a '%' not followed by two hex digits (RFC 3986 "
                             "§2.1): percent-encode a '%' itself as %25")
        return v  # where it may point is the route's check (callback_refusal): a setting


# The orchestrator's callback_networks setting's default: loopback unless the operator widens it.
DEFAULT_CALLBACK_NETWORKS = ("127.0.0.0/8", "::1/128")


def callback_networks(allowed: Iterable[str] = DEFAULT_CALLBACK_NETWORKS,
                      ) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Where subscription callbacks may go (the callback_networks setting, parsed)."""
    return [ipaddress.ip_network(x.strip(), strict=False) for x in allowed if x.strip()]


def callback_allowed(host: str, allowed: Iterable[str] = DEFAULT_CALLBACK_NETWORKS) -> bool:
    if host == "localhost":
        return True
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name would be resolved later, to anywhere: only addresses
    return any(addr in net for net in callback_networks(allowed))


def callback_refusal(uri: str, allowed: Iterable[str],
                     own: Iterable[tuple[str, int]] = ()) -> str | None:
    """Why a (well-formed) callback URI may not be used, or None if it may. `own`: the
    orchestrator's own listening addresses (host, port): its API and its NATS server, which
    notifications POSTed to would reach as requests of the orchestrator's making."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    for own_host, own_port in own:
        if port == own_port and _same_host(host, own_host):
            return (f"callbackUri: {host}:{port} is the orchestrator's own server; a "
                    "callback is a client's endpoint")
    if callback_allowed(host, allowed):
        return None
    return (f"callbackUri: callback host {host!r} is not in the allowed networks "
            f"{[str(n) for n in callback_networks(allowed)]} (set NETFATE_CALLBACK_NETWORKS)")


def _same_host(a: str, b: str) -> bool:
    """Whether two hosts are one: equal, or both loopback or any-address (a server on
    0.0.0.0 or 127.0.0.1 answers at 127.0.0.1, [::1] and localhost alike)."""
    def local(h: str) -> bool:
        if h in ("localhost", ""):
            return True
        try:
            ip = ipaddress.ip_address(h.strip("[]"))
        except ValueError:
            return False
        return ip.is_loopback or ip.is_unspecified

    return a.lower() == b.lower() or (local(a) and local(b))


class Accepted(BaseModel):
    """202: what was planned, and the operation occurrences to follow."""

    intents: list[dict[str, Any]] = []
    vnf_lcm_op_occs: list[str] = []
    reasons: list[str] = []
    # associate: the user's login's RADIUS Acct-Session-Id (one per login, kept on roams)
    acct_session_id: str | None = None
