"""A stub HTTP server on loopback for tests of clients: a handler class, served on a free
port in a daemon thread for the length of a `with` block; and `exchange`, raw bytes to a
server under test and its answer, for requests no HTTP client would send."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on 127.0.0.1; yields the base URL (``http://127.0.0.1:PORT``)."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def exchange(port: int, request: bytes, *, tls: ssl.SSLContext | None = None,
             server_hostname: str | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send ``request`` as it is (no client's checks) to 127.0.0.1:port, over TLS with
    ``tls``, and read until the server closes; (status, the rest of the answer). A request
    that the server should keep alive must say ``Connection: close``."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    with tls.wrap_socket(raw, server_hostname=server_hostname) if tls else raw as c:
        c.sendall(request)
        got = b""
        while chunk := c.recv(65536):
            got += chunk
    head, _, rest = got.partition(b"\r\n")
    assert head.startswith(b"HTTP/1."), got[:300]
    return int(head.split()[1]), rest
