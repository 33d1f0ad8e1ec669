"""Locations the app writes from the request's own Host, made relative (RFC 9110 §10.2.2
allows a relative reference). Starlette's redirect of a path with a trailing slash
(`/ui/login/` -> `/ui/login`) is absolute and built from the request's Host header, so
`Host: evil.example` got `Location: http://evil.example/ui/login`, before any
authentication (Host header injection; probe of 2026-12-06). The README promises that the
request's Host is not echoed.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RelativeLocation:
    """ASGI middleware: a response's ``Location`` whose scheme and authority are the
    request's own Host (what the app made from it) loses them: only its path, query and
    fragment go out. A Location to anywhere else is left as it is."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = next((v for k, v in scope.get("headers", ()) if k == b"host"), b"")
        own = host.decode("latin-1").lower()

        async def relative_send(message: Message) -> None:
            if message["type"] == "http.response.start" and own:
                message = dict(message, headers=[
                    (k, _relative(v, own) if k.lower() == b"location" else v)
                    for k, v in message.get("headers", ())])
            await send(message)

        await self.app(scope, receive, relative_send)


def _relative(value: bytes, own_host: str) -> bytes:
    """``value`` (a Location) without scheme and authority when they are ``own_host``'s."""
    try:
        parts = urlsplit(value.decode("latin-1"))
    except ValueError:
        return value
    if parts.scheme not in ("http", "https") or parts.netloc.lower() != own_host:
        return value
    out = parts.path or "/"
    if parts.query:
        out += "?" + parts.query
    if parts.fragment:
        out += "#" + parts.fragment
    return out.encode("latin-1")
