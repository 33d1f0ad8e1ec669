"""TS rules (NNF paper, Table I: createTSRule / deleteTSRule) on a node's LSI.

The orchestrator keeps them in the NFVI database and publishes them in the node's switch state,
so the SDN controller installs them next to its own flows (and its sync never removes them).
A write answers once the controller has confirmed the new state, or after `wait` seconds.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import StringConstraints
from sqlalchemy.orm import Session

from netfate.db import repo
from netfate.errors import NotFound
from netfate.orchestrator.api.deps import db, orch
from netfate.orchestrator.api.schemas import TSRuleBody
from netfate.validators import NAME_PATTERN

router = APIRouter()
NODE = Path(description="a node's name", examples=["cpe1"], pattern=NAME_PATTERN)
RULE_ID = Path(description="a TS rule's id", examples=["user:client1:up:0"],
               pattern=r"^[\x21-\x7e]{1,128}$")
# Rule ids in a query: at most 32 (32 x 128 characters, even %-encoded, stay within the 16 KiB
# request head uvicorn reads: a longer URL is cut off by the server, not answered).
RuleId = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,128}$")]
WAIT = Query(default=3.0, ge=0, le=30, allow_inf_nan=False,
             description="seconds to wait for the controller (0-30)")


def _out(row: Any) -> dict[str, Any]:
    return {"node": row.node_name, "rule_id": row.rule_id, "priority": row.priority,
            "match": row.match, "output": row.output, "updated_at": row.updated_at}


async def _publish(request: Request, node: str, wait: float) -> dict[str, Any]:
    """Publish the node's switch state; what the controller confirmed about it."""
    sw = orch(request).switches
    if sw is None:
        return {"installed": False, "skipped": [], "errors": []}
    reports = [r for r in await sw.apply(node, timeout=wait) if r.node == node]
    return {"installed": bool(reports),
            "skipped": [x for r in reports for x in r.skipped],
            "errors": [x for r in reports for x in r.errors]}


@router.get("/nodes/{node}/ts_rules", summary="Table I: the TS rules on a node's LSI")
def list_rules(request: Request, node: str = NODE) -> list[dict[str, Any]]:
    with db(request).session() as s:
        repo.get_node(s, node)
        return [_out(r) for r in repo.list_ts_rules(s, node)]


@router.get("/nodes/{node}/ts_rules/{rule_id}")
def get_rule(request: Request, node: str = NODE, rule_id: str = RULE_ID) -> dict[str, Any]:
    with db(request).session() as s:
        return _out(repo.get_ts_rule(s, node, rule_id))


@router.put("/nodes/{node}/ts_rules/{rule_id}", summary="Table I: createTSRule (or replace)")
async def put_rule(request: Request, body: TSRuleBody, node: str = NODE,
                   rule_id: str = RULE_ID, wait: float = WAIT) -> dict[str, Any]:
    def put(s: Session) -> dict[str, Any]:
        [row] = repo.put_ts_rules(s, node, [{**body.model_dump(), "rule_id": rule_id}])
        return _out(row)

    out = await db(request).run(put)
    return {**out, **await _publish(request, node, wait)}


@router.post("/nodes/{node}/ts_rules", summary="createTSRule for several rules at once "
                                              "(each created or replaced by its rule_id)")
async def put_rules(request: Request, body: list[dict[str, Any]], node: str = NODE,
                    wait: float = WAIT) -> dict[str, Any]:
    def put(s: Session) -> list[dict[str, Any]]:
        return [_out(r) for r in repo.put_ts_rules(s, node, body)]

    rows = await db(request).run(put)
    return {"rules": rows, **await _publish(request, node, wait)}


@router.delete("/nodes/{node}/ts_rules/{rule_id}", summary="Table I: deleteTSRule")
async def delete_rule(request: Request, node: str = NODE, rule_id: str = RULE_ID,
                      wait: float = WAIT) -> dict[str, Any]:
    if not await db(request).run(repo.delete_ts_rules, node, [rule_id]):
        raise NotFound(f"no TS rule {rule_id!r} at {node!r}")
    return {"deleted": 1, **await _publish(request, node, wait)}


@router.delete("/nodes/{node}/ts_rules", summary="deleteTSRule for several rules at once "
                                                "(unknown ids are not an error)")
async def delete_rules(request: Request, node: str = NODE,
                       rule_id: Annotated[list[RuleId], Query(max_length=32)] = [],  # noqa: B006
                       wait: float = WAIT) -> dict[str, Any]:
    n = await db(request).run(repo.delete_ts_rules, node, rule_id)
    return {"deleted": n, **await _publish(request, node, wait)}
