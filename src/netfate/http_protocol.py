"""uvicorn's HTTP/1.1 protocol with time limits on each request's head and body, and checks of
its Host and target, for the project's HTTP servers (the orchestrator's API and UI, the
captive portals).

uvicorn bounds a request head's size (h11, 16 KiB) but not the time it takes to arrive: a
client sending one header byte every few seconds ("slowloris") holds its connection, and the
server's keep-alive timer is reset by every byte. With enough such clients nobody else is
served. A body declared and then sent slowly, or never, held its connection the same way.
Here a request line and headers must arrive whole within HEAD_TIMEOUT_S of their first byte
(or of the connection, for its first request), and its body within BODY_TIMEOUT_S of the
head; otherwise the client gets 408 Request Timeout (RFC 9110 §15.5.9) and the connection
is closed. The time between keep-alive requests is uvicorn's own keep-alive timeout.

A request whose Host is missing (HTTP/1.1), repeated or not a host, or whose target is an
absolute URL for another host than its Host, gets 400 naming what is wrong, before any app
sees it (RFC 9112 §3.2; the rules are in netfate.http_host); an absolute URL for the Host's
own host is served as its path (RFC 9112 §3.2.2). h11's own refusals (a missing or second
Host, a malformed head) name theirs too, where uvicorn said "Invalid HTTP request received."

Used as `uvicorn.Config(http=HeadTimeoutProtocol)`: uvicorn's documented place for another
HTTP protocol class.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from netfate.http_host import BadRequest, check_request

HEAD_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 60.0  # a 16 MiB bundle upload needs ~2.2 Mbit/s
_REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\n"
                    b"content-length: 32\r\nconnection: close\r\n\r\n"
                    b"the request came in too slowly\r\n")


class _CheckedConnection(h11.Connection):
    """h11's server side of a connection that also refuses a request whose Host or target
    is not valid, and keeps why it refused one (uvicorn's 400 says only that it did)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refused: str | None = None

    def next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        try:
            event = super().next_event()
            if isinstance(event, h11.Request):
                event = self._checked(event)
        except h11.RemoteProtocolError as exc:
            self.refused = str(exc)
            raise
        return event

    @staticmethod
    def _checked(event: h11.Request) -> h11.Request:
        hosts = [v for k, v in event.headers if k == b"host"]
        try:
            target = check_request(event.method, event.target, hosts, event.http_version)
        except BadRequest as exc:
            raise h11.RemoteProtocolError(str(exc)) from None
        if target == event.target:
            return event
        return h11.Request(method=event.method, target=target, http_version=event.http_version,
                           headers=event.headers.raw_items())


class HeadTimeoutProtocol(H11Protocol):
    """H11Protocol whose requests' heads must arrive within HEAD_TIMEOUT_S, and their bodies
    within BODY_TIMEOUT_S after; whose requests must have a valid Host and target."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        size = self.config.h11_max_incomplete_event_size  # as uvicorn makes its own
        self.conn = _CheckedConnection(h11.SERVER) if size is None else \
            _CheckedConnection(h11.SERVER, size)
        self._timer: asyncio.TimerHandle | None = None
        self._waiting_for: object = None  # the h11 state the timer runs for

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(h11.IDLE, HEAD_TIMEOUT_S)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        state = self.conn.their_state
        if self.transport.is_closing():
            self._disarm()
        elif state is h11.IDLE:  # a head has begun (or a keep-alive request)
            self._arm(h11.IDLE, HEAD_TIMEOUT_S)
        elif state is h11.SEND_BODY:  # the head is in: the body has its own time
            self._arm(h11.SEND_BODY, BODY_TIMEOUT_S)
        else:
            self._disarm()  # the whole request is in: the response is the app's

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        if isinstance(self.conn, _CheckedConnection) and self.conn.refused:
            # ASCII, as uvicorn encodes it (h11's messages and ours quote bytes with repr)
            why = self.conn.refused.encode("ascii", "backslashreplace").decode()
            msg = f"Invalid HTTP request: {why}"
        super().send_400_response(msg + "\n")

    def _arm(self, state: object, seconds: float) -> None:
        if self._timer is not None and self._waiting_for is state:
            return  # already timing this part of the request
        self._disarm()
        self._waiting_for = state
        self._timer = self.loop.call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._waiting_for = None

    def _timed_out(self) -> None:
        state, self._timer, self._waiting_for = self._waiting_for, None, None
        if self.transport.is_closing() or self.conn.their_state is not state:
            return
        ours = self.conn.our_state
        if ours is h11.IDLE or (ours is h11.SEND_RESPONSE and not (
                self.cycle is not None and self.cycle.response_started)):
            self.transport.write(_REQUEST_TIMEOUT)  # nothing of ours is under way on it
        self.transport.close()
