"""Shared helpers for routes: the orchestrator, and rows as JSON."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from netfate.db import Database
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
