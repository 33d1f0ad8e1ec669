"""Shared helpers for routes: the orchestrator, and rows as JSON."""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from netfate.db import Database
from netfate.errors import InvalidInput
from netfate.orchestrator.coordinator import Coordinator
from netfate.orchestrator.service import Orchestrator


def orch(request: Request) -> Orchestrator:
    o: Orchestrator = request.app.state.orchestrator
    return o


def db(request: Request) -> Database:
    d = orch(request).db
    assert d is not None
    return d


def coord(request: Request) -> Coordinator:
    c = orch(request).coordinator
    assert c is not None
    return c


def row(obj: Any, hide: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A mapped row's columns, less private ones (password hashes, bundle bytes)."""
    private = set(getattr(obj, "_private", ())) | set(hide)
    out = {}
    for col in obj.__table__.columns:
        if col.key in private:
            continue
        v = getattr(obj, col.key)
        out[col.key] = v.value if hasattr(v, "value") else v
    return out


def one_row(request: Request, query: Callable[[Session], Any]) -> dict[str, Any]:
    """The row `query` returns, as JSON, read (or written) in one session."""
    with db(request).session() as s:
        return row(query(s))


def all_rows(request: Request, query: Callable[[Session], Iterable[Any]]) -> list[dict[str, Any]]:
    """The rows `query` returns, as JSON, read in one session."""
    with db(request).session() as s:
        return [row(r) for r in query(s)]


async def no_stray_body(request: Request) -> None:
    """A request body where the route takes none is refused (InvalidInput, 422), not
    ignored: `POST /users/u/idle` with `{{{` looked accepted. Routes that read their body
    themselves declare it in their OpenAPI (openapi_extra "requestBody") and are left alone;
    GET and HEAD are too."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    route = request.scope.get("route")
    if route is None or getattr(route, "body_field", None) is not None \
            or "requestBody" in (getattr(route, "openapi_extra", None) or {}):
        return
    if await request.body():
        raise InvalidInput(f"{request.method} {request.url.path} takes no request body")



# Query parameters a middleware reads itself (api.auth: the key of a bundle's content URL).
MIDDLEWARE_QUERY = frozenset({"key"})


def _query_fields(dependant: Any) -> list[Any]:
    out = list(getattr(dependant, "query_params", ()))
    for sub in getattr(dependant, "dependencies", ()):
        out += _query_fields(sub)
    return out


def _repeatable(field: Any) -> bool:
    """Whether a query parameter takes several values (a list, optional or not)."""
    ann = getattr(getattr(field, "field_info", None), "annotation", None)
    kinds = [ann, *typing.get_args(ann)]
    return any(typing.get_origin(k) in (list, tuple, set, frozenset) or k in (list, tuple)
               for k in kinds)


async def known_query(request: Request) -> None:
    """Query parameters the route does not take are refused (InvalidInput, 422, naming them
    and the ones it takes), and so is one that takes a single value given twice:
    `?nod=cpe1` listed every node's rows and `?state=A&state=B` used B (probe of
    2026-12-05)."""
    if not request.query_params:
        return
    fields = _query_fields(getattr(request.scope.get("route"), "dependant", None))
    takes = {f.alias: f for f in fields}
    unknown = sorted(k for k in request.query_params if k not in takes
                     and k not in MIDDLEWARE_QUERY)
    if unknown:
        offer = ", ".join(sorted(takes)) or "none"
        raise InvalidInput(f"{request.url.path} takes no query parameter "
                           f"{', '.join(repr(k[:64]) for k in unknown[:5])} (it takes: {offer})")
    for k, f in takes.items():
        if len(request.query_params.getlist(k)) > 1 and not _repeatable(f):
            raise InvalidInput(f"query parameter {k!r} is given "
                               f"{len(request.query_params.getlist(k))} times; it takes one "
                               "value")
