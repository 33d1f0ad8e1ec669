"""Troubleshooting operations (issue 13): ask "where is it broken?" for one user or one
destination; follow the occurrence until its report (netfate.orchestrator.troubleshoot)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from netfate.orchestrator.api.deps import coord, orch
from netfate.orchestrator.troubleshoot import Troubleshoots

router = APIRouter()
OP_ID = Path(description="a troubleshooting operation's id",
             pattern=r"^[0-9a-f-]{36}$", examples=["00000000-0000-0000-0000-000000000000"])


class TroubleshootBody(BaseModel):
    """Exactly one of user and destination; the rest bound the probes' work. Strict types
    (as schemas.Body): `true` or "8_0" is not a port, nor `true` a number of seconds."""

    model_config = ConfigDict(extra="forbid", strict=True)
    user: str | None = Field(None, max_length=64, description="a user's name")
    destination: str | None = Field(None, max_length=64, description="an IPv4 address")
    port: int | None = Field(None, description="the user's flow is TCP to this port")
    seconds: int = Field(3, description="each capture's duration, 1-30 s")
    packets: int = Field(50, description="each capture's packet bound, 1-1000")
    timeout_s: float = Field(25.0, description="the whole question's bound, 1-120 s")


def ops_of(request: Request) -> Troubleshoots:
    """The orchestrator's troubleshooting operations (made on first use)."""
    o = orch(request)
    if o.troubleshoots is None:
        o.troubleshoots = Troubleshoots(coord(request), o.settings.probe_subnet,
                                        o.settings.probe_gateway)
    return o.troubleshoots


@router.post("/troubleshoot", status_code=202, summary="Ask where a user's traffic stops")
async def troubleshoot(request: Request, body: TroubleshootBody) -> JSONResponse:
    op = await ops_of(request).start(body.model_dump())
    return JSONResponse(op.as_dict(), status_code=202,
                        headers={"Location": f"/api/v1/troubleshoot/{op.id}"})


@router.get("/troubleshoot", summary="The troubleshooting operations recorded")
async def list_troubleshoots(request: Request) -> list[dict[str, Any]]:
    return await ops_of(request).recorded()


@router.get("/troubleshoot/{op_id}", summary="A troubleshooting operation and its report")
async def get_troubleshoot(request: Request, op_id: str = OP_ID) -> dict[str, Any]:
    return await ops_of(request).get(op_id)
