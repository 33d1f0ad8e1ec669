"""The coordinator's reads and writes, as functions of one session: each runs in one
transaction through `Database.run` (off the event loop) and returns plain data."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from netfate.db import repo
from netfate.db.models import LcmOperation, OpState, Presence
from netfate.errors import NotFound
from netfate.orchestrator.flavour import flavour_for
from netfate.orchestrator.planner import InstanceFacts


def problem(title: str, detail: str, status: int = 500) -> dict[str, Any]:
    """An RFC 7807 problem body, for an operation's error."""
    return {"type": "about:blank", "title": title, "status": status, "detail": detail}


def new_ops(s: Session, specs: list[tuple[LcmOperation, str, dict[str, Any]]]) -> list[str]:
    """Operation occurrences, PROCESSING: their ids, in order."""
    return [repo.new_op_occ(s, op, iid, params).id for op, iid, params in specs]


def set_op_state(s: Session, op_id: str, state: OpState,
                 error: dict[str, Any] | None = None) -> dict[str, Any]:
    """The new state; the operation as the event hub publishes it."""
    occ = repo.set_op_state(s, op_id, state, error=error)
    return {"id": op_id, "operation": occ.operation.value,
            "vnf_instance_id": occ.vnf_instance_id, "state": state.value}


def want(s: Session, node: str, owner: str, nf: str, iid: str,
         config: dict[str, Any] | None) -> None:
    """The instance present, from the NF's newest bundle; config None: the owner's. Raises
    NotFound when the catalogue has no bundle of the NF."""
    bundle = repo.latest_bundle_sha(s, nf)
    if config is None:
        with contextlib.suppress(NotFound):
            config = (repo.get_user(s, owner).nf_config or {}).get(nf, {})
    repo.upsert_instance(s, node=node, owner=owner, nf_name=nf, bundle_sha256=bundle,
                         flavour=flavour_for(s, node, bundle), instance_id=iid, config=config or {},
                         desired_state=Presence.PRESENT)


def drop(s: Session, iid: str) -> str | None:
    """The instance absent; its node (None if it does not exist)."""
    try:
        inst = repo.get_instance(s, iid)
    except NotFound:
        return None
    repo.set_instance_desired_state(s, iid, Presence.ABSENT)
    return inst.node_name


def configure(s: Session, iid: str, config: dict[str, Any]) -> str:
    """The instance's configuration; its node. Raises NotFound."""
    i = repo.get_instance(s, iid)
    repo.upsert_instance(s, node=i.node_name, owner=i.owner, nf_name=i.nf_name,
                         bundle_sha256=i.bundle_sha256, flavour=i.flavour, instance_id=iid,
                         config=config)
    return i.node_name


def instance_facts(s: Session, iid: str) -> InstanceFacts:
    """What the planner needs about an instance. Raises NotFound."""
    i = repo.get_instance(s, iid)
    descriptor = repo.bundle_descriptor(s, i.bundle_sha256)
    online = True
    with contextlib.suppress(NotFound):
        online = repo.get_node(s, i.node_name).online
    return InstanceFacts(node=i.node_name, owner=i.owner, nf=i.nf_name, config=dict(i.config),
                         exportable=bool((descriptor.get("state") or {}).get("exportable")),
                         node_online=online, flavour=i.flavour or "native")


def facts_of(s: Session, iids: Iterable[str]) -> dict[str, InstanceFacts]:
    """Facts of those of `iids` that exist."""
    out: dict[str, InstanceFacts] = {}
    for iid in dict.fromkeys(iids):
        with contextlib.suppress(NotFound):
            out[iid] = instance_facts(s, iid)
    return out


def steer(s: Session, user: str, node: str, chain: list[str], mac: str | None,
          ip: str | None) -> None:
    """The user's steering rule at the node (Table III), desired."""
    repo.set_steering(s, user=user, node=node, chain=chain, mac=mac, ip=ip)


def unsteer(s: Session, user: str, node: str) -> None:
    repo.clear_steering(s, user=user, node=node)


def mark_installed(s: Session, user: str, node: str, installed: bool) -> None:
    repo.mark_steering_installed(s, user=user, node=node, installed=installed)
