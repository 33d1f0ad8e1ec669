"""NF instances (Table II), their lifecycle operations and steering (Table III)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Path, Request, Response
from sqlalchemy.orm import Session

from netfate.db import repo
from netfate.db.models import LcmOperation, OpState, Presence, VnfInstance
from netfate.errors import Conflict, NotFound
from netfate.orchestrator import lcm_records
from netfate.orchestrator.api import paging
from netfate.orchestrator.api.background import run_op
from netfate.orchestrator.api.deps import all_rows, coord, db, one_row
from netfate.orchestrator.api.nf_configs import (
    NfCheck,
    newest_package,
    run_checks,
    validate_config,
)
from netfate.orchestrator.api.schemas import (
    IID,
    Accepted,
    Instantiate,
    MigrateBody,
    NodeFilter,
    OwnerFilter,
    UpdateBody,
)
from netfate.orchestrator.nf_status import nf_status

router = APIRouter()
log = logging.getLogger("netfate.api")


def _accepted(response: Response, op_id: str) -> Accepted:
    """202 with the new operation occurrence's URI in Location (SOL003 §5.4.4.3.1)."""
    response.headers["Location"] = f"/api/v1/vnf_lcm_op_occs/{op_id}"
    return Accepted(vnf_lcm_op_occs=[op_id])


def _not_busy(s: Any, iid: str) -> None:
    """SOL003: one lifecycle operation at a time per instance (409 otherwise)."""
    busy = repo.list_op_occs(s, state=OpState.PROCESSING, vnf_instance_id=iid)
    if busy:
        raise Conflict(f"NF instance {iid} has an operation in progress "
                       f"({busy[0].operation.value} {busy[0].id}); retry when it ends")


def _present(s: Any, iid: str, what: str) -> VnfInstance:
    # An operation in progress first: an instantiate records its instance in its first step,
    # so a request right after its 202 finds the operation before the instance.
    _not_busy(s, iid)
    lcm_records.not_migration_targets(s, [iid])
    inst = repo.get_instance(s, iid)
    if inst.desired_state != Presence.PRESENT:
        raise Conflict(f"NF instance {iid} is being terminated: cannot {what} it")
    return inst


@router.get("/vnf_instances")
def list_instances(request: Request, node: NodeFilter = None,
                   owner: OwnerFilter = None) -> list[dict[str, Any]]:
    return all_rows(request, lambda s: repo.list_instances(s, node=node, owner=owner))


@router.get("/vnf_instances/{iid}")
def get_instance(request: Request, iid: str = IID) -> dict[str, Any]:
    return one_row(request, lambda s: repo.get_instance(s, iid))


@router.get("/vnf_instances/{iid}/status", summary="The NF's own status report, live")
async def instance_status(request: Request, iid: str = IID) -> dict[str, Any]:
    return await nf_status(db(request), coord(request).bus, iid)


def _check_node_can_run(s: Any, node: str, descriptor: dict[str, Any]) -> None:
    from netfate.orchestrator.flavour import catalogue_entry
    from netfate.orchestrator.snapshot import node_view

    n = repo.get_node(s, node)
    # The resolver's test, less free memory (the operator chose the node): some implementation
    # whose flavour the node runs, with the capabilities that flavour needs there.
    entry = catalogue_entry(str(descriptor.get("name")), descriptor)
    res = entry.resolve(node_view(n), fit=lambda impl: None)
    if res.implementation is None:
        raise Conflict(f"node {node} cannot run {descriptor['name']}: "
                       + "; ".join(res.reasons))
    if not n.online:
        raise Conflict(f"node {node} is offline")
    if n.admin_down:
        raise Conflict(f"node {node} is marked down by the operator")


# -- checks before an operation starts (each one transaction, off the event loop) -------------
# Read first, for the clear error before the NF's own check of a config (run_checks, slow);
# the coordinator's new_op checks busy and present again, atomically with recording the
# operation, so parallel requests for one instance get one 202 and 409s (lcm_records.claim_op).
def _can_instantiate(s: Session, body: Instantiate) -> tuple[str, NfCheck | None]:
    """The new instance's id and the NF's own check of its config (run_checks, after this
    transaction); raises InvalidInput, NotFound or Conflict."""
    package = newest_package(s, body.nf)
    repo.get_user(s, body.owner)
    _check_node_can_run(s, body.node, package.descriptor)
    check = validate_config(package, body.config, body.owner)
    iid = repo.instance_id_for(body.node, body.owner, body.nf)
    # a migration's target first: it records the instance while it runs
    lcm_records.not_migration_targets(s, [iid])
    try:
        existing = repo.get_instance(s, iid)
        if existing.desired_state == Presence.PRESENT:
            raise Conflict(f"NF instance {iid} already exists")
    except NotFound:
        pass
    _not_busy(s, iid)
    return iid, check


def _can_terminate(s: Session, iid: str) -> str:
    """The instance's owner; raises NotFound or Conflict."""
    _not_busy(s, iid)  # first: see _present
    return repo.get_instance(s, iid).owner  # absent already is fine: a retry


def _can_migrate(s: Session, iid: str, node: str) -> tuple[str, str]:
    """The instance's id on `node`, and its owner; raises NotFound or Conflict."""
    inst = _present(s, iid, "migrate")
    if inst.node_name == node:
        raise Conflict(f"{iid} already runs on {node}")
    desc = repo.get_bundle(s, inst.bundle_sha256).descriptor
    _check_node_can_run(s, node, desc)
    new_iid = repo.instance_id_for(node, inst.owner, inst.nf_name)
    try:
        there = repo.get_instance(s, new_iid)
    except NotFound:
        pass
    else:  # taking it over would lose it if the migration rolls back
        if there.desired_state == Presence.PRESENT:
            raise Conflict(f"{inst.owner} already has {inst.nf_name} on {node} ({new_iid})")
        _not_busy(s, new_iid)
    return new_iid, inst.owner


def _can_update(s: Session, iid: str, config: dict[str, Any]
                ) -> tuple[str, NfCheck | None]:
    """The instance's owner and the NF's own check of the config (run_checks, after this
    transaction); raises NotFound, Conflict or InvalidInput."""
    inst = _present(s, iid, "update")
    return inst.owner, validate_config(repo.get_bundle(s, inst.bundle_sha256), config,
                                       inst.owner)


@router.post("/vnf_instances", status_code=202, response_model=Accepted,
             summary="Instantiate an NF for an owner on a node")
async def instantiate(request: Request, response: Response, body: Instantiate) -> Accepted:
    c = coord(request)
    iid, check = await db(request).read(_can_instantiate, body)
    await asyncio.to_thread(run_checks, [check])
    op_id = await c.new_op(LcmOperation.INSTANTIATE, iid, body.model_dump(),
                           not_present=[iid])
    run_op(c, op_id, c.instantiate(op_id, body.node, body.owner, body.nf, iid, body.config),
         body.owner)
    return _accepted(response, op_id)


@router.post("/vnf_instances/{iid}/terminate", status_code=202, response_model=Accepted)
async def terminate(request: Request, response: Response, iid: str = IID) -> Accepted:
    c = coord(request)
    owner = await db(request).run(_can_terminate, iid)
    op_id = await c.new_op(LcmOperation.TERMINATE, iid, {}, exists=iid)
    run_op(c, op_id, c.terminate(op_id, iid), owner)
    return _accepted(response, op_id)


@router.post("/vnf_instances/{iid}/migrate", status_code=202, response_model=Accepted)
async def migrate(request: Request, response: Response, iid: str = IID, *,
                  body: MigrateBody) -> Accepted:
    c = coord(request)
    new_iid, owner = await db(request).run(_can_migrate, iid, body.node)
    op_id = await c.new_op(LcmOperation.MIGRATE, iid,
                           {"dst": body.node, "new_instance_id": new_iid},
                           present=iid, free=[new_iid], not_present=[new_iid])
    run_op(c, op_id, c.migrate(op_id, iid, body.node, new_iid), owner)
    return _accepted(response, op_id)


@router.patch("/vnf_instances/{iid}", status_code=202, response_model=Accepted,
              summary="Update an NF's config while it runs")
async def update(request: Request, response: Response, iid: str = IID, *,
                 body: UpdateBody) -> Accepted:
    c = coord(request)
    owner, check = await db(request).read(_can_update, iid, body.config)
    await asyncio.to_thread(run_checks, [check])
    op_id = await c.new_op(LcmOperation.UPDATE, iid, {"config": body.config}, present=iid)
    run_op(c, op_id, c.update(op_id, iid, body.config), owner)
    return _accepted(response, op_id)


@router.get("/vnf_lcm_op_occs", summary="LCM operation occurrences, oldest first, in pages "
                                         "(a Link header rel=\"next\" when there are more)")
def list_ops(request: Request, response: Response, state: OpState | None = None,
             marker: paging.Marker = None) -> list[dict[str, Any]]:
    after = paging.decode(marker, (float, str))
    rows = all_rows(request, lambda s: repo.list_op_occs(s, state=state, after=after,
                                                         limit=paging.PAGE_SIZE + 1))
    return paging.page(request, response, rows, lambda r: (r["start_time"], r["id"]))


@router.get("/vnf_lcm_op_occs/{op_id}")
def get_op(request: Request, op_id: str = Path(pattern=r"^[\x21-\x7e]{1,64}$",
                                               description="the occurrence's id")
           ) -> dict[str, Any]:
    return one_row(request, lambda s: repo.get_op_occ(s, op_id))


@router.get("/steering_rules", summary="Table III: users' chains per node")
def steering(request: Request, node: NodeFilter = None) -> list[dict[str, Any]]:
    return all_rows(request, lambda s: repo.list_steering(s, node=node))
