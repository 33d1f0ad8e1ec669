"""Nodes (what agents report) and users (Table I), and user association."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response

from netfate.db import repo
from netfate.db.models import SteeringRule
from netfate.orchestrator import sessions, tenants
from netfate.orchestrator.api.deps import all_rows, coord, db, one_row, orch, row
from netfate.orchestrator.api.nf_configs import (
    NfCheck,
    check_required_configs,
    check_user_nf_config,
    run_checks,
)
from netfate.orchestrator.api.schemas import (
    NODE,
    USER,
    Accepted,
    Associate,
    NodePatch,
    UserCreate,
    UserPatch,
)
from netfate.orchestrator.api.user_nf_updates import update_running

router = APIRouter()


@router.get("/nodes", summary="NFVI nodes and their capabilities and telemetry")
def list_nodes(request: Request) -> list[dict[str, Any]]:
    return all_rows(request, repo.list_nodes)


@router.get("/nodes/{name}")
def get_node(request: Request, name: str = NODE) -> dict[str, Any]:
    return one_row(request, lambda s: repo.get_node(s, name))


@router.patch("/nodes/{name}", summary="Mark a node down (out of placement) or up again")
async def patch_node(request: Request, name: str = NODE, *, body: NodePatch) -> dict[str, Any]:
    def update(s: Any) -> tuple[dict[str, Any], bool]:
        n = repo.get_node(s, name)
        changed = n.admin_down != body.admin_down
        n.admin_down = body.admin_down
        s.flush()
        return row(n), changed

    out, changed = await db(request).run(update)
    if changed:
        from netfate.engine import NodeDown, NodeUp

        ev = NodeDown(node=name) if body.admin_down else NodeUp(node=name)
        orch(request).hub.publish("node", {"name": name, "admin_down": body.admin_down})
        coord(request).spawn(coord(request).handle(ev))
    return out


def _check_nfs(request: Request, nfs: list[str] | None) -> None:
    with db(request).session() as s:
        _known_nfs(s, nfs)


def _known_nfs(s: Any, nfs: list[str] | None) -> None:
    """Raises InvalidInput naming the NFs the catalogue lacks."""
    if not nfs:
        return
    known = {b.name for b in repo.list_bundles(s)}
    unknown = [n for n in nfs if n not in known]
    if unknown:
        from netfate.errors import InvalidInput

        raise InvalidInput(f"unknown NFs {unknown}; the catalogue has {sorted(known)}")


@router.post("/users", status_code=201)
def create_user(request: Request, response: Response, body: UserCreate) -> dict[str, Any]:
    _check_nfs(request, body.required_nfs)
    with db(request).session(read_only=True) as s:
        checks = check_user_nf_config(s, body.name, body.nf_config)
        check_required_configs(s, body.name, body.required_nfs, body.nf_config)
    run_checks(checks)  # the NFs' own, holding no database lock (a sync route: a thread)
    with db(request).session() as s:
        u = repo.create_user(s, body.name, body.password, required_nfs=body.required_nfs,
                             nf_config=body.nf_config,
                             classifiers=[c.model_dump(exclude_none=True)
                                          for c in body.classifiers])
        out = row(u)
    response.headers["Location"] = f"/api/v1/users/{body.name}"  # RFC 9110 §15.3.2
    return out


@router.get("/users")
def list_users(request: Request) -> list[dict[str, Any]]:
    return all_rows(request, repo.list_users)


@router.get("/users/{name}")
def get_user(request: Request, name: str = USER) -> dict[str, Any]:
    """The user; ``session_nfs``: the NFs a RADIUS CoA set for their current login, in place
    of ``required_nfs`` until it ends (null: none set)."""
    with db(request).session() as s:
        out = row(repo.get_user(s, name))
        cur = repo.active_session(s, name)
        out["session_nfs"] = cur.nfs_override if cur is not None else None
    return out


@router.patch("/users/{name}", summary="Edit a user; a change to their NFs, their NFs' "
                                       "config or classifiers takes effect at once if they "
                                       "are logged in (vnf_lcm_op_occs: the UPDATEs of "
                                       "their running NFs)")
async def patch_user(request: Request, name: str = USER, *, body: UserPatch
                     ) -> dict[str, Any]:
    classes = None if body.classifiers is None else [
        c.model_dump(exclude_none=True) for c in body.classifiers]

    retenant: list[str] = []

    def update(s: Any) -> dict[str, Any]:
        _known_nfs(s, body.required_nfs)
        u = repo.update_user(s, name, password=body.password, required_nfs=body.required_nfs,
                             nf_config=body.nf_config, classifiers=classes)
        out = row(u)
        if body.nf_config is not None:  # the shared NFs they use get their new policy
            s.flush()
            retenant[:] = tenants.retenant_user(s.connection(), name,
                                                {*body.nf_config, *u.required_nfs})
        return out

    def check(s: Any) -> list[NfCheck | None]:
        if body.required_nfs is not None or body.nf_config is not None:
            u = repo.get_user(s, name)  # what the body leaves out stays as it is
            check_required_configs(
                s, name, u.required_nfs if body.required_nfs is None else body.required_nfs,
                u.nf_config if body.nf_config is None else body.nf_config)
        return check_user_nf_config(s, name, body.nf_config)

    checks = await db(request).read(check)
    await asyncio.to_thread(run_checks, checks)  # holding no database lock
    out = await db(request).run(update)
    for node in retenant:
        coord(request).pushes.changed(node)
        await coord(request).push_if_changed(node)
    if body.nf_config is not None:  # their running NFs take it now, not at the next login
        out["vnf_lcm_op_occs"] = await update_running(coord(request), name,
                                                      out.get("nf_config") or {})
    if body.required_nfs is not None or body.classifiers is not None:
        # Re-planned now (make before break), not at the next repair pass.
        await sessions.replan(coord(request), db(request), name)
    return out


# 204 with response_class=Response: no body and no Content-Type (RFC 9110 §15.3.5), where
# FastAPI's default JSONResponse sent "application/json" with it.
@router.delete("/users/{name}", status_code=204, response_class=Response)
async def delete_user(request: Request, name: str = USER) -> None:
    """Forget a user (409 while they own NF instances). The switches where they were
    located or steered are published again at once: their flows and their place in the
    core's locations go now, not at some later change (new-user probe, 2026-12-05)."""

    def delete(s: Any) -> set[str]:
        u = repo.get_user(s, name)
        nodes = {u.access_node} if u.access_node else set()
        nodes |= set(s.scalars(sa.select(SteeringRule.node_name)
                               .where(SteeringRule.user_name == name)))
        repo.delete_user(s, name)
        return nodes

    nodes = await db(request).run(delete)
    switches = orch(request).switches
    if switches is not None and nodes:
        await switches.publish_many([a for n in sorted(nodes) for a in switches.affected(n)])


@router.post("/users/{name}/associate", status_code=202, response_model=Accepted,
             summary="The user logged in at a node: place (or move) their NFs there")
async def associate(request: Request, name: str = USER, *, body: Associate) -> Accepted:
    coord(request).admission.check(f"associating user {name}")
    login = sessions.Login(body.session_timeout, body.idle_timeout) if body.login else None
    run = await sessions.associate(coord(request), db(request), name, body.node, body.mac,
                                   body.ip, login=login)
    acct = await db(request).read(sessions.acct_session_of, name)
    return Accepted(intents=[i.model_dump(mode="json") for i in run.plan.intents],
                    vnf_lcm_op_occs=run.ops, reasons=list(run.plan.reasons),
                    acct_session_id=acct)


@router.post("/users/{name}/idle", status_code=202, response_model=Accepted,
             summary="The user's traffic went idle: release their NFs")
async def idle(request: Request, name: str = USER) -> Accepted:
    coord(request).admission.check(f"user {name} going idle")
    run = await sessions.idle(coord(request), db(request), name)
    return Accepted(intents=[i.model_dump(mode="json") for i in run.plan.intents],
                    vnf_lcm_op_occs=run.ops, reasons=list(run.plan.reasons))


@router.post("/users/{name}/logout", status_code=202, response_model=Accepted,
             summary="The user logged out: end their session (RADIUS Stop, User-Request) and "
                     "release their NFs")
async def logout(request: Request, name: str = USER) -> Accepted:
    run = await sessions.end(coord(request), db(request), name, sessions.USER_REQUEST)
    return Accepted(intents=[i.model_dump(mode="json") for i in run.plan.intents],
                    vnf_lcm_op_occs=run.ops, reasons=list(run.plan.reasons))


@router.get("/switches", summary="Each switch's desired state as published to the SDN "
                                 "controller, and what the controller last confirmed")
def switches(request: Request) -> list[dict[str, Any]]:
    sw = orch(request).switches
    if sw is None:
        return []
    return sw.summary()


@router.get("/handovers", summary="The last fast re-authentications at another node "
                                  "(roaming): timings and outcome, newest last")
def handovers(request: Request) -> list[dict[str, Any]]:
    return list(orch(request).handovers)
