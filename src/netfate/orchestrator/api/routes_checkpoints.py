"""NF state checkpoints (orchestrator/checkpoints.py): what a failover would restore, and a
pass taken on request (before a node's maintenance, say, or by a test)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from netfate.orchestrator.api.deps import coord, db

router = APIRouter()


@router.get("/checkpoints", summary="Each NF instance's last exported state: when it was "
                                    "taken (the documents stay in the orchestrator)")
def list_checkpoints(request: Request) -> list[dict[str, Any]]:
    return coord(request).executor.checkpoints.summary()


@router.post("/checkpoints", summary="Export the state of every running NF now; what is "
                                     "kept afterwards")
async def take_checkpoints(request: Request) -> list[dict[str, Any]]:
    c = coord(request)
    await c.executor.checkpoints.take(db(request), c.bus)
    return c.executor.checkpoints.summary()
