"""The project's HTTP servers give a request's head a time limit (slowloris): a head that
trickles in gets 408 and its connection closed; whole requests, keep-alive ones included,
are served as before. A request with a missing, repeated or invalid Host, or an absolute
URL for another host, gets 400 naming what is wrong (RFC 9112 §3.2)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from netfate import http_protocol
from netfate.http_host import BadRequest, check_request
from netfate.http_protocol import HeadTimeoutProtocol
from tests.local_http import exchange

LIMIT_S = 0.6


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    while True:  # the whole body first, as a JSON route reads it
        msg = await receive()
        if msg["type"] == "http.disconnect" or not msg.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def _echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The path and Host the app was given, as JSON."""
    hosts = [v.decode("latin-1") for k, v in scope["headers"] if k == b"host"]
    body = json.dumps({"path": scope["path"], "query": scope["query_string"].decode(),
                       "hosts": hosts}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setattr(http_protocol, "HEAD_TIMEOUT_S", LIMIT_S)
    monkeypatch.setattr(http_protocol, "BODY_TIMEOUT_S", 2 * LIMIT_S)
    with _serving(_app) as port:
        yield port


@pytest.fixture(scope="module")
def echo() -> Iterator[int]:
    with _serving(_echo) as port:
        yield port


@contextlib.contextmanager
def _serving(app: Any) -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                        http=HeadTimeoutProtocol, timeout_keep_alive=30))
    t = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        srv.should_exit = True
        t.join(10)
        sock.close()


def _read_all(c: socket.socket, timeout: float) -> tuple[bytes, float]:
    """What the server sends until it closes, and when it closed (s from now)."""
    t0 = time.monotonic()
    c.settimeout(timeout)
    data = b""
    while chunk := c.recv(4096):
        data += chunk
    return data, time.monotonic() - t0


def test_a_head_that_trickles_in_gets_408_and_is_closed(server: int) -> None:
    c = socket.create_connection(("127.0.0.1", server))
    t0 = time.monotonic()
    for b in b"GET / HTTP/1.1\r\nHost: x\r\n":  # one byte each 50 ms: never a whole head
        try:
            c.sendall(bytes([b]))
        except OSError:
            break
        time.sleep(0.05)
        if time.monotonic() - t0 > LIMIT_S + 1:
            break
    data, _ = _read_all(c, 5)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert time.monotonic() - t0 < LIMIT_S + 2
    c.close()


def test_a_connection_that_sends_nothing_is_closed(server: int) -> None:
    c = socket.create_connection(("127.0.0.1", server))
    data, after = _read_all(c, 5)
    assert data.startswith(b"HTTP/1.1 408 ") and after < LIMIT_S + 1.5, (data, after)
    c.close()


def test_whole_requests_are_served_and_keep_alive_heads_get_the_limit_too(server: int) -> None:
    c = socket.create_connection(("127.0.0.1", server))
    c.settimeout(5)
    for _ in range(2):  # two requests on one connection, slower together than the limit
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while not got.endswith(b"ok"):
            chunk = c.recv(4096)
            assert chunk, got
            got += chunk
        assert got.startswith(b"HTTP/1.1 200 "), got
        time.sleep(LIMIT_S * 0.8)
    c.sendall(b"GET / HTTP/1.1\r\n")  # a third one's head, left unfinished
    data, after = _read_all(c, 5)
    assert data.startswith(b"HTTP/1.1 408 ") and after < LIMIT_S + 1.5, (data, after)
    c.close()


def test_a_body_declared_and_never_sent_gets_408(server: int) -> None:
    """Headers with Content-Length: 100000 and then no body (or a byte now and then) held
    the connection for ever (probe of 2026-12-03)."""
    c = socket.create_connection(("127.0.0.1", server))
    t0 = time.monotonic()
    c.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nab")
    for _ in range(3):  # a byte now and then, each well within the head's limit
        time.sleep(LIMIT_S * 0.5)
        try:
            c.sendall(b"c")
        except OSError:
            break
    data, _ = _read_all(c, 5)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert time.monotonic() - t0 < 2 * LIMIT_S + 1.5
    c.close()


def test_a_whole_body_is_served(server: int) -> None:
    c = socket.create_connection(("127.0.0.1", server))
    c.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd")
    c.settimeout(5)
    got = b""
    while not got.endswith(b"ok"):
        chunk = c.recv(4096)
        assert chunk, got
        got += chunk
    assert got.startswith(b"HTTP/1.1 200 ")
    c.close()


# -- Host and request target (RFC 9112 §3.2) ---------------------------------------------

HOSTILE = [  # (the request's head after its request line, words of the 400's answer)
    (b"GET / HTTP/1.1\r\n", ["Missing", "Host"]),
    (b"GET / HTTP/1.1\r\nHost:\r\n", ["Host header ''", "is empty"]),
    (b"GET / HTTP/1.1\r\nHost: evil example\r\n", ["'evil example'", "' '"]),
    (b"GET / HTTP/1.1\r\nHost: <script>\r\n", ["'<script>'", "'<'"]),
    (b"GET / HTTP/1.1\r\nHost: a/b\r\n", ["'a/b'", "'/'"]),
    (b"GET / HTTP/1.1\r\nHost: user@a\r\n", ["'user@a'", "'@'"]),
    (b"GET / HTTP/1.1\r\nHost: a%zz\r\n", ["'a%zz'", "'%'", "not allowed"]),
    # sub-delims and %-escapes name no DNS host (probe of 2026-12-06)
    (b"GET / HTTP/1.1\r\nHost: a%2Db\r\n", ["'a%2Db'", "'%'"]),
    (b"GET / HTTP/1.1\r\nHost: 127.0.0.1%00\r\n", ["'%'"]),
    (b"GET / HTTP/1.1\r\nHost: 127.0.0.1,evil.com\r\n", ["','", "not allowed"]),
    (b"GET / HTTP/1.1\r\nHost: " + b"a" * 5000 + b"\r\n", ["5000 characters", "at most 255"]),
    (b"GET / HTTP/1.1\r\nHost: 127.0.0.1:99999\r\n", ["port '99999'", "1-65535"]),
    (b"GET / HTTP/1.1\r\nHost: 127.0.0.1:0\r\n", ["port '0'", "1-65535"]),
    (b"GET / HTTP/1.1\r\nHost: a:http\r\n", ["'a:http'", "port (digits)"]),
    (b"GET / HTTP/1.1\r\nHost: a:80:80\r\n", ["'a:80:80'", "port"]),
    (b"GET / HTTP/1.1\r\nHost: :80\r\n", ["':80'", "no host name"]),
    (b"GET / HTTP/1.1\r\nHost: caf\xc3\xa9.example\r\n", ["not ASCII", "xn--"]),
    (b"GET / HTTP/1.1\r\nHost: [::1\r\n", ["without its ']'"]),
    (b"GET / HTTP/1.1\r\nHost: [evil]\r\n", ["[evil]", "not an IPv6 address"]),
    (b"GET / HTTP/1.1\r\nHost: [fe80::1%eth0]\r\n", ["not an IPv6 address"]),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n", ["multiple Host"]),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n", ["multiple Host"]),
    (b"GET / HTTP/1.0\r\nHost: a b\r\n", ["'a b'"]),  # HTTP/1.0 need not send one
    (b"GET http://evil.example/api/v1/users HTTP/1.1\r\nHost: good.example\r\n",
     ["'evil.example'", "'good.example'", "same host"]),
    (b"GET http://good.example:8080/ HTTP/1.1\r\nHost: good.example\r\n", ["same host"]),
    (b"GET http://user@good.example/ HTTP/1.1\r\nHost: good.example\r\n", ["userinfo"]),
    (b"GET http://a b/ HTTP/1.1\r\nHost: a\r\n", ["Invalid HTTP request"]),  # h11's
    (b"GET ftp://good.example/ HTTP/1.1\r\nHost: good.example\r\n", ["ftp URL"]),
    (b"GET http://[::1/ HTTP/1.1\r\nHost: good.example\r\n", ["authority", "']'"]),
    (b"GET users HTTP/1.1\r\nHost: good.example\r\n", ["'users'", "not a path"]),
    (b"GET * HTTP/1.1\r\nHost: good.example\r\n", ["* is for OPTIONS"]),
    (b"CONNECT evil.example:443 HTTP/1.1\r\nHost: good.example\r\n", ["same host"]),
]


@pytest.mark.parametrize(("head", "words"), HOSTILE, ids=[h.split(b"\r\n")[0].decode(
    "latin-1") + " | " + b" ".join(h.split(b"\r\n")[1:]).decode("latin-1")
    for h, _ in HOSTILE])
def test_a_hostile_host_or_target_gets_400_naming_it(echo: int, head: bytes,
                                                     words: list[str]) -> None:
    status, rest = exchange(echo, head + b"Connection: close\r\n\r\n")
    assert status == 400, rest
    assert b"text/plain" in rest.lower()
    text = rest.decode("ascii")  # the message is ASCII, whatever the client sent
    for w in words:
        assert w in text, (w, text)
    assert '"path"' not in text  # the app never saw it


ACCEPTED = [  # (the request's head after its request line, the path served, its Host)
    (b"GET /api/v1/health?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n", "/api/v1/health",
     "127.0.0.1:8080"),  # as httpx sends it
    (b"GET / HTTP/1.1\r\nHost: portal.netfate\r\n", "/", "portal.netfate"),
    (b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n", "/", "[::1]:8080"),
    (b"GET / HTTP/1.1\r\nHost: [v1.fe80::a+en1]\r\n", "/", "[v1.fe80::a+en1]"),
    (b"GET / HTTP/1.1\r\nHost: xn--caf-dma.example.\r\n", "/", "xn--caf-dma.example."),
    (b"GET / HTTP/1.1\r\nHost: my_host-1.example\r\n", "/", "my_host-1.example"),
    (b"GET / HTTP/1.1\r\nHost:   spaced.example  \r\n", "/", "spaced.example"),  # OWS
    (b"GET / HTTP/1.0\r\n", "/", None),  # HTTP/1.0 without Host
    (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n", "*", "a"),
    # absolute-form for the Host's own host (any case, its port implied or not): its path
    (b"GET http://Good.Example/api/v1/users?x=1 HTTP/1.1\r\nHost: good.example\r\n",
     "/api/v1/users", "good.example"),
    (b"GET http://good.example:80 HTTP/1.1\r\nHost: good.example\r\n", "/", "good.example"),
    (b"GET https://[::1]/x HTTP/1.1\r\nHost: [::1]:443\r\n", "/x", "[::1]:443"),
    (b"GET http://good.example?q HTTP/1.1\r\nHost: good.example\r\n", "/", "good.example"),
]


@pytest.mark.parametrize(("head", "path", "host"), ACCEPTED)
def test_valid_hosts_and_targets_are_served(echo: int, head: bytes, path: str,
                                            host: str | None) -> None:
    status, rest = exchange(echo, head + b"Connection: close\r\n\r\n")
    assert status == 200, rest
    got = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert got["path"] == path
    assert got["hosts"] == ([host] if host else [])


def test_an_absolute_target_keeps_its_query() -> None:
    assert check_request(b"GET", b"http://a/x?q=1&r", [b"a"], b"1.1") == b"/x?q=1&r"
    assert check_request(b"GET", b"https://a:443?q", [b"A:443"], b"1.1") == b"/?q"
    assert check_request(b"GET", b"http://a/x", [], b"1.0") == b"/x"  # nothing to differ
    with pytest.raises(BadRequest, match="same host"):
        check_request(b"GET", b"https://a/x", [b"a:80"], b"1.1")  # https's port is 443


def test_a_bad_host_on_a_keep_alive_connection_closes_it(echo: int) -> None:
    """A good request, then a bad one on the same connection: 200, then 400 and closed."""
    status, rest = exchange(echo, b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
                                  b"GET /two HTTP/1.1\r\nHost: a b\r\n\r\n")
    assert status == 200 and b'"/one"' in rest, rest
    assert b"HTTP/1.1 400 " in rest and b"'a b'" in rest and b'"/two"' not in rest, rest
