"""uvicorn's HTTP/1.1 protocol with a time limit on each request's head, for the project's
HTTP servers (the orchestrator's API and UI, the captive portals).

uvicorn bounds a request head's size (h11, 16 KiB) but not the time it takes to arrive: a
client sending one header byte every few seconds ("slowloris") holds its connection, and the
server's keep-alive timer is reset by every byte. With enough such clients nobody else is
served. Here a request line and headers must arrive whole within HEAD_TIMEOUT_S of their
first byte (or of the connection, for its first request); otherwise the client gets 408
Request Timeout (RFC 9110 §15.5.9) and the connection is closed. A request's body and the
time between keep-alive requests are left to the application and uvicorn's own keep-alive
timeout, as before.

Used as `uvicorn.Config(http=HeadTimeoutProtocol)`: uvicorn's documented place for another
HTTP protocol class.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_TIMEOUT_S = 10.0
_REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\n"
                    b"content-length: 37\r\nconnection: close\r\n\r\n"
                    b"the request's head came in too slowly")


class HeadTimeoutProtocol(H11Protocol):
    """H11Protocol whose requests' heads must arrive within HEAD_TIMEOUT_S."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm()  # a head has begun (or a keep-alive request): it has until the timer
        else:
            self._disarm()  # the head is in: the body and the response are the app's

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.our_state is h11.IDLE:  # nothing of ours is under way on it
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()
