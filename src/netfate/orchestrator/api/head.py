"""HEAD on every GET resource (RFC 9110 §9.3.2: "the server SHOULD send the same header
fields in response to a HEAD request as it would have sent if the request method had been
GET", without the content). FastAPI's routes take only the methods they declare, so a HEAD
answered 405 where a monitoring probe or `curl -I` expects the GET's status and headers.

The request runs as a GET; its response's start (status, headers, Content-Length) goes out
as it is and its body is dropped. A streamed response (the SSE feed) is ended after its
start: its producer is stopped rather than left running for a client that reads nothing.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _Done(Exception):
    """Raised into the app once the response's start has gone out (a stream's producer)."""


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "HEAD":
            await self.app(scope, receive, send)
            return
        # A copy: the server keeps its own scope's HEAD, and frames the response for it.
        as_get = dict(scope, method="GET")
        started = False

        async def head_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                await send(message)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            if message["type"] == "http.response.body" and started:
                if message.get("more_body", False):
                    raise _Done  # a stream: nothing more will be sent for this request
                return
            await send(message)

        try:
            await self.app(as_get, receive, head_send)
        except BaseException as exc:
            if not _only_done(exc):
                raise


def _only_done(exc: BaseException) -> bool:
    """Whether exc is our stop, alone or in a group (a stream's task group wraps it)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_done(e) for e in exc.exceptions)
    return isinstance(exc, _Done)
