"""The Host header and request target the project's HTTP servers accept (RFC 9112 §3.2), for
the uvicorn protocol of the API, UI and captive portals (netfate.http_protocol) and the
metrics listeners of the controller and agents (netfate.metrics.common).

RFC 9112 §3.2: a server MUST respond 400 (Bad Request) to an HTTP/1.1 request that lacks a
Host header, and to any request with more than one Host header or an invalid one. h11 (under
uvicorn) counted them but took any value: an empty Host, `a b` or `<x>` reached the apps,
and so did `GET http://evil.example/... HTTP/1.1` with another Host (probe of 2026-12-06).
Here a Host is an authority of RFC 3986 §3.2.2-3.2.3: a host name (unreserved characters
only, at most 255), an IPv4 address or a bracketed IP literal, with an optional port
1-65535; not empty, since an http(s) URI has a host (RFC 9110 §4.2.1). A request target is a
path (origin-form), `*` for OPTIONS, an authority for CONNECT, or an http(s) URL whose
authority is the Host's (absolute-form, RFC 9112 §3.2.2), which is then served as its path.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

# RFC 3986 §3.2.2's reg-name, narrowed to its unreserved characters: an HTTP host is a DNS
# name (RFC 1123 §2.1; '_' and '~' tolerated) or an address, and sub-delims and %-escapes
# (`a,b`, `a%00`) name none (probe of 2026-12-06). An IPv4 address is one as far as its
# characters go.
_REG_NAME = re.compile(r"[A-Za-z0-9\-._~]*")
MAX_HOST = 255  # characters of a host name (RFC 1035 §2.3.4: 255 octets for a name)
_IPV_FUTURE = re.compile(r"v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+")
_PORT = re.compile(r"[0-9]*")  # RFC 3986 §3.2.3: port = *DIGIT
_SCHEME = re.compile(rb"[A-Za-z][A-Za-z0-9+.\-]*")  # RFC 3986 §3.1
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_SHOWN = 100  # characters of a client's value quoted back in a message


class BadRequest(ValueError):
    """Why a request's Host or target is refused: the text of its 400, in ASCII (uvicorn
    encodes its 400s so)."""


def show(raw: bytes) -> str:
    """A client's bytes quoted for a message: ASCII, at most _SHOWN characters."""
    return ascii(raw[:_SHOWN].decode("latin-1")) + ("..." if len(raw) > _SHOWN else "")


def _authority(raw: bytes) -> tuple[str, str]:
    """(host, port) of an authority (RFC 3986 §3.2.2-3.2.3; port '' when not given);
    ValueError saying what is wrong."""
    if not raw:
        raise ValueError("is empty")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("is not ASCII (a name is sent in its A-label form, xn--...)") from None
    if text.startswith("["):  # IP-literal
        literal, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError("has a '[' without its ']'")
        if not (_IPV_FUTURE.fullmatch(literal) or _ipv6(literal)):
            raise ValueError(f"has [{literal[:_SHOWN]}], which is not an IPv6 address")
        host = f"[{literal}]"
    else:
        host = text.split(":", 1)[0]  # a reg-name has no ':'
        rest = text[len(host):]
        good = _REG_NAME.match(host)
        end = good.end() if good else 0
        if end < len(host):
            raise ValueError(f"has {host[end]!a}, which is not allowed in a host name "
                             "(letters, digits, '-', '.', '_', '~')")
        if not host:
            raise ValueError("has no host name")
        if len(host) > MAX_HOST:
            raise ValueError(f"has a host name of {len(host)} characters (at most "
                             f"{MAX_HOST})")
    port = rest[1:]
    if rest and not (rest.startswith(":") and _PORT.fullmatch(port)):
        raise ValueError(f"has {rest[:_SHOWN]!a} after its host, where only "
                         ":port (digits) may be")
    if port and (len(port) > 5 or not 0 < int(port) <= 65535):
        raise ValueError(f"has port {port[:_SHOWN]!a}, which is not 1-65535")
    return host, port


def _ipv6(literal: str) -> bool:
    if "%" in literal:  # a zone id is not part of a URI (RFC 3986 §3.2.2)
        return False
    try:
        ipaddress.IPv6Address(literal)
    except ValueError:
        return False
    return True


def host_problem(raw: bytes) -> str | None:
    """Why a Host header's value is not valid, in a sentence; None when it is."""
    try:
        _authority(raw)
    except ValueError as exc:
        return f"the Host header {show(raw)} {exc} (RFC 9110 section 7.2, RFC 3986 section 3.2.2)"
    return None


def _same(a: bytes, b: bytes, scheme: str) -> bool:
    """Whether two valid authorities name the same host and port (RFC 3986 §6.2.2-6.2.3:
    the host in any case, an omitted port as the scheme's)."""
    (ha, pa), (hb, pb) = _authority(a), _authority(b)
    default = _DEFAULT_PORTS.get(scheme, "")
    return ha.lower() == hb.lower() and (pa or default) == (pb or default)


def check_request(method: bytes, target: bytes, hosts: Sequence[bytes],
                  http_version: bytes) -> bytes:
    """The request's target to serve: the given one, or an absolute-form one's path and
    query. BadRequest naming what is wrong with the request's Host headers (``hosts``, as
    received) or its target (RFC 9112 §3.2)."""
    if len(hosts) > 1:
        raise BadRequest(f"the request has {len(hosts)} Host headers: send one "
                         "(RFC 9112 section 3.2)")
    if not hosts and http_version == b"1.1":
        raise BadRequest("the request has no Host header: HTTP/1.1 requires one naming "
                         "the host it is for (RFC 9112 section 3.2)")
    host = hosts[0] if hosts else None
    if host is not None and (why := host_problem(host)):
        raise BadRequest(why)
    if target.startswith(b"/"):
        return target  # origin-form, what clients send to a server
    if target == b"*":
        if method == b"OPTIONS":
            return target
        raise BadRequest(f"the request target * is for OPTIONS, not {show(method)} "
                         "(RFC 9112 section 3.2.4)")
    scheme, sep, rest = target.partition(b"://")
    if sep and _SCHEME.fullmatch(scheme):
        return _absolute(scheme.decode("ascii").lower(), rest, target, host)
    if method == b"CONNECT":  # authority-form (RFC 9112 §3.2.3)
        _check_authority(target, target, host, "http")
        return target
    raise BadRequest(f"the request target {show(target)} is not a path (/...), an http(s) "
                     "URL or * (RFC 9112 section 3.2)")


def _absolute(scheme: str, rest: bytes, target: bytes, host: bytes | None) -> bytes:
    """An absolute-form target's path and query, its authority checked against Host."""
    if scheme not in _DEFAULT_PORTS:
        raise BadRequest(f"the request target {show(target)} is a {scheme} URL: this server "
                         "serves http and https (RFC 9112 section 3.2.2)")
    end = min([i for i in (rest.find(c) for c in (b"/", b"?", b"#")) if i >= 0],
              default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if b"@" in authority:
        raise BadRequest(f"the request target {show(target)} has a userinfo (user@), which "
                         "an http(s) URL must not have (RFC 9110 section 4.2.4)")
    _check_authority(authority, target, host, scheme)
    # RFC 9112 §3.2.1: an empty path is sent as "/"
    return tail if tail.startswith(b"/") else b"/" + tail


def _check_authority(authority: bytes, target: bytes, host: bytes | None,
                     scheme: str) -> None:
    try:
        _authority(authority)
    except ValueError as exc:
        raise BadRequest(f"the authority {show(authority)} of the request target "
                         f"{show(target)} {exc} (RFC 3986 section 3.2.2)") from None
    # RFC 9112 §3.2.2 has the target's authority win over Host; one that differs is a
    # request meant for another server (or one sent to confuse what sits in between).
    if host is not None and not _same(authority, host, scheme):
        raise BadRequest(f"the request target {show(target)} is for {show(authority)} but "
                         f"the Host header is {show(host)}: they must name the same host "
                         "(RFC 9112 section 3.2.2)")
