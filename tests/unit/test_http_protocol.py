"""The project's HTTP servers give a request's head a time limit (slowloris): a head that
trickles in gets 408 and its connection closed; whole requests, keep-alive ones included,
are served as before."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from netfate import http_protocol
from netfate.http_protocol import HeadTimeoutProtocol

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


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setattr(http_protocol, "HEAD_TIMEOUT_S", LIMIT_S)
    monkeypatch.setattr(http_protocol, "BODY_TIMEOUT_S", 2 * LIMIT_S)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(_app, log_level="warning", lifespan="off",
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
