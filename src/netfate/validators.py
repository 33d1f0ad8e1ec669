"""Strict checks for what a user or a peer hands in: addresses, prefixes, MACs, port numbers
and identifiers. One module, shared by the API's schemas, the CLI's arguments, the bus
messages and the controller's model, so each boundary refuses the same things the same way.

Every check accepts ASCII only. Python's `int()` and `ipaddress` take other scripts' digits in
places (`int("٢٤")` is 24, and an IPv4 prefix length in Arabic-Indic digits parses), and
regular expressions' `\\d` (Python's, and Rust's in pydantic `pattern=`) match every script's
digits; an address written so passes one layer and is refused by the next, after it was stored.
So each check here starts with `str.isascii()` and matches whole (`fullmatch`: a `$` would
let a trailing newline through) with explicit `[0-9]` classes.

Types (pydantic annotated types; the error names the field, so the API answers 422 with it):

- `IPv4`: a dotted quad, four decimal octets 0-255 without leading zeros, returned canonical;
- `StationIPv4`: an IPv4 a host may hold: not 0.0.0.0/8, loopback, multicast, 240/4, broadcast;
- `IPv4Prefix`: an address or `address/len` (len 0-32), returned as the network (host bits
  cleared, as `ipaddress.IPv4Network(strict=False)` does);
- `Mac`: six colon-separated byte pairs, any case, returned lower case;
- `UnicastMac`: a station's MAC: the I/G (group) bit clear and not all zeros (IEEE 802-2014
  8.2: a group address never sources a frame);
- `PortNumber`: a TCP/UDP port 0-65535 (1-65535 for `ListenPort`), an int, never a string
  or a bool;
- `Name`: a node, user or NF name (1-32 of a-z, 0-9, '_', '.', '-', starting with a letter or
  digit: it ends up in interface, namespace and file names);
- `InstanceId`: an NF instance id (node-owner-nf: up to 98 such characters);
- `Token`: a database key such as a TS rule id: 1-128 printable ASCII characters, no spaces.

`check(kind, value)` applies one of them outside pydantic (the CLI), raising ValueError.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StrictInt, TypeAdapter

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_IPV4 = re.compile(rf"^{_OCTET}(?:\.{_OCTET}){{3}}$")
_PREFIX = re.compile(rf"^({_OCTET}(?:\.{_OCTET}){{3}})(?:/(3[0-2]|[12][0-9]|[0-9]))?$")
_MAC = re.compile(r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
_IID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,97}$")
_TOKEN = re.compile(r"^[\x21-\x7e]{1,128}$")

NAME_PATTERN = _NAME.pattern  # for OpenAPI docs and clients


def _ascii(v: str, what: str) -> str:
    if not isinstance(v, str):
        raise ValueError(f"{what} must be a string")
    if not v.isascii():
        raise ValueError(f"{v!r} is not {what}: only ASCII characters (digits 0-9)")
    return v


def ipv4(v: str) -> str:
    """A dotted-quad IPv4 address, canonical. Raises ValueError otherwise."""
    _ascii(v, "an IPv4 address")
    if not _IPV4.fullmatch(v):
        raise ValueError(f"{v!r} is not an IPv4 address like 10.0.0.2 "
                         "(four numbers 0-255, no leading zeros)")
    return str(ipaddress.IPv4Address(v))


def station_ipv4(v: str) -> str:
    """An IPv4 address a host may hold. Raises ValueError otherwise."""
    a = ipaddress.IPv4Address(ipv4(v))
    if a in _NOT_A_HOST[0] or a.is_loopback or a.is_multicast or \
            a in _NOT_A_HOST[1]:
        raise ValueError(f"{v!r} is not a host's address (0/8, loopback, multicast, "
                         "240/4 and broadcast are not)")
    return str(a)


_NOT_A_HOST = (ipaddress.IPv4Network("0.0.0.0/8"), ipaddress.IPv4Network("240.0.0.0/4"))


def ipv4_prefix(v: str) -> str:
    """An IPv4 address (a /32) or network (a.b.c.d/len) -> the network. ValueError for a
    network with host bits set ("10.0.0.1/8" was stored as 10.0.0.0/8, silently: is the
    host or the network meant? Probe of 2026-12-06)."""
    _ascii(v, "an IPv4 network")
    m = _PREFIX.fullmatch(v)
    if not m:
        raise ValueError(f"{v!r} is not an IPv4 network like 10.0.0.0/24 "
                         "(prefix length 0-32)")
    net = ipaddress.IPv4Network(v, strict=False)
    if "/" in v and net.network_address != ipaddress.IPv4Address(v.partition("/")[0]):
        raise ValueError(f"{v!r} has host bits set: give the network, {net}, or the "
                         "address alone")
    return str(net)


def mac(v: str) -> str:
    """A MAC address (colon-separated hex pairs), lower case. Raises ValueError otherwise."""
    _ascii(v, "a MAC address")
    low = v.lower()
    if not _MAC.fullmatch(low):
        raise ValueError(f"{v!r} is not a MAC address like 02:00:00:00:00:01")
    return low


def is_group_mac(v: str) -> bool:
    """Whether the MAC's I/G bit is set (multicast or broadcast)."""
    return bool(int(v[:2], 16) & 1)


def unicast_mac(v: str) -> str:
    """A station's MAC: not a group address, not all zeros. Raises ValueError otherwise."""
    low = mac(v)
    if is_group_mac(low):
        raise ValueError(f"{v!r} is a group (multicast or broadcast) MAC, not a station's")
    if low == "00:00:00:00:00:00":
        raise ValueError(f"{v!r} is not a station's MAC (all zeros)")
    return low


def _pattern(rx: re.Pattern[str], what: str) -> Callable[[str], str]:
    def check(v: str) -> str:
        _ascii(v, what)
        if not rx.fullmatch(v):
            raise ValueError(f"{v!r} is not {what} (pattern {rx.pattern})")
        return v
    return check


name = _pattern(_NAME, "a name: 1-32 characters a-z, 0-9, '_', '.', '-', starting with a "
                       "letter or digit")
instance_id = _pattern(_IID, "an NF instance id (node-owner-nf: a-z, 0-9, '_', '.', '-')")
token = _pattern(_TOKEN, "an identifier: 1-128 printable ASCII characters without spaces")


def _no_str(v: Any) -> Any:
    # JSON numbers only: "80" (or "٨٠", which int() would take) is not a port number.
    if isinstance(v, (str, bytes, bool)):
        raise ValueError("a port number must be a JSON integer")
    return v


IPv4 = Annotated[str, AfterValidator(ipv4)]
StationIPv4 = Annotated[str, AfterValidator(station_ipv4)]
IPv4Prefix = Annotated[str, AfterValidator(ipv4_prefix)]
Mac = Annotated[str, AfterValidator(mac)]
UnicastMac = Annotated[str, AfterValidator(unicast_mac)]
# (The constraints before the validator: the JSON schema then says minimum/maximum, not
# pydantic's own ge/le, which OpenAPI readers do not know.)
PortNumber = Annotated[StrictInt, Field(ge=0, le=65535), BeforeValidator(_no_str)]
ListenPort = Annotated[StrictInt, Field(ge=1, le=65535), BeforeValidator(_no_str)]
Name = Annotated[str, AfterValidator(name), Field(examples=["cpe1"])]
InstanceId = Annotated[str, AfterValidator(instance_id)]
Token = Annotated[str, AfterValidator(token)]

KINDS: dict[str, Any] = {
    "ipv4": IPv4, "station-ipv4": StationIPv4, "ipv4-prefix": IPv4Prefix, "mac": Mac,
    "unicast-mac": UnicastMac, "port": PortNumber, "name": Name, "instance-id": InstanceId,
    "token": Token,
}
_ADAPTERS: dict[str, TypeAdapter[Any]] = {}


def check(kind: str, value: Any) -> Any:
    """`value` checked as one of KINDS (its canonical form). Raises ValueError with the
    reason, KeyError for an unknown kind."""
    ta = _ADAPTERS.get(kind)
    if ta is None:
        ta = _ADAPTERS[kind] = TypeAdapter(KINDS[kind])
    try:
        return ta.validate_python(value)
    except ValueError as exc:  # pydantic's ValidationError: keep its message, not its frame
        errors = getattr(exc, "errors", None)
        if callable(errors):
            raise ValueError("; ".join(str(e.get("msg", e)).removeprefix("Value error, ")
                                       for e in errors())) from None
        raise
