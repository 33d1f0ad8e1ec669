"""The captive portal's HTTP(S) servers: uvicorn on a socket that listens inside the services
namespace, run in a thread of this (root-namespace) process; one on port 80, and with a
certificate one on port 443 for the captive portal API (RFC 8908 section 3)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netfate.drivers import netns
from netfate.errors import DriverError

if TYPE_CHECKING:
    import uvicorn


def listen_socket(ns: str | None, port: int, host: str = "0.0.0.0",
                  backlog: int = 128) -> socket.socket:
    """A listening TCP socket inside ns, for a server running in this (root) namespace."""
    sock = netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise DriverError(f"cannot listen on {host}:{port} in {ns}: {exc}") from exc
    return sock


class PortalServer:
    """uvicorn serving an ASGI app on a given socket, in a thread of its own. (In the main
    thread uvicorn would take over SIGTERM and re-raise it after shutdown, killing the
    process before its cleanup.)"""

    def __init__(self, app: Any, sock: socket.socket, *,
                 tls: tuple[Path, Path] | None = None) -> None:
        """``tls``: (certificate, key) PEM files to serve https on ``sock`` (check them
        first with access.tls.server_context, which names what is wrong)."""
        import uvicorn

        self.sock = sock
        cert, key = (str(tls[0]), str(tls[1])) if tls is not None else (None, None)
        # proxy_headers off: the peer address is the client's, which picks its MAC.
        from netfate.http_protocol import HeadTimeoutProtocol

        config = uvicorn.Config(app, log_level="warning", proxy_headers=False,
                                server_header=False, lifespan="off", ssl_certfile=cert,
                                ssl_keyfile=key, http=HeadTimeoutProtocol)
        self.server: uvicorn.Server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="portal", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as exc:  # reported by start()
            self.error = exc

    def start(self, timeout: float = 5.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise DriverError(f"the portal did not start: {self.error or 'timeout'}")
            time.sleep(0.01)

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            self.server.force_exit = True
            self._thread.join(1.0)
        self.sock.close()
