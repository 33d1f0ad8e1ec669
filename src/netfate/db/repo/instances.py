"""NF instances (the paper's Table II): what should run where, and what does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.db.models import ActualState, Node, Presence, User, VnfInstance, VnfPackage
from netfate.db.repo import check
from netfate.db.repo._common import get_or_404, guard, set_given, stamp, where_given
from netfate.errors import Conflict, NotFound


def instance_id_for(node: str, owner: str, nf_name: str) -> str:
    """The default instance id, e.g. "cpe1-user1-firewall"."""
    return f"{node}-{owner}-{nf_name}"


def upsert_instance(
    session: Session,
    *,
    node: str,
    owner: str,
    nf_name: str,
    bundle_sha256: str,
    flavour: str,
    instance_id: str | None = None,
    config: dict[str, Any] | None = None,
    desired_state: Presence | str | None = None,
    active_users: Sequence[str] | None = None,
    now: float | None = None,
) -> VnfInstance:
    """Record that ``owner``'s NF ``nf_name`` should be on ``node``, or update the record.

    An instance's node, owner and NF name never change (a migration is a new instance and the
    old one's deletion). Omitted optional fields keep their values; actual_state is the
    agent's to report (set_instance_actual_state).
    """
    check.name("node name", node)
    check.name("owner", owner)
    check.name("NF name", nf_name)
    iid = instance_id or instance_id_for(node, owner, nf_name)
    iid = check.name("instance id", iid, check.ID_MAX)
    check.text("flavour", flavour)
    desired = check.enum(Presence, desired_state, "desired_state") if desired_state else None
    cfg = check.mapping("config", config) if config is not None else None
    users = None
    if active_users is not None:
        users = check.str_list("active_users", active_users, unique=True)
    t = stamp(now)

    inst = session.get(VnfInstance, iid)
    if inst is not None and (inst.node_name, inst.owner, inst.nf_name) != (node, owner, nf_name):
        raise Conflict(
            f"NF instance {iid!r} is {inst.nf_name!r} of {inst.owner!r} on {inst.node_name!r}, "
            f"not {nf_name!r} of {owner!r} on {node!r}"
        )
    if inst is None:
        other = session.scalar(
            sa.select(VnfInstance.id).where(
                VnfInstance.node_name == node,
                VnfInstance.owner == owner,
                VnfInstance.nf_name == nf_name,
            )
        )
        if other is not None:
            raise Conflict(f"{owner!r} already has {nf_name!r} on {node!r}: instance {other!r}")
    get_or_404(session, Node, node, "node")
    get_or_404(session, User, owner, "user")
    get_or_404(session, VnfPackage, bundle_sha256, "bundle")

    with guard(
        session,
        f"NF instance {iid!r}",
        unique=Conflict(f"{owner!r} already has {nf_name!r} on {node!r}"),
    ):
        if inst is None:
            inst = VnfInstance(
                id=iid, node_name=node, owner=owner, nf_name=nf_name, created_at=t,
                desired_state=Presence.PRESENT, actual_state=ActualState.PENDING,
                config={}, active_users=[],
            )
            session.add(inst)
        inst.bundle_sha256 = bundle_sha256
        inst.flavour = flavour
        set_given(inst, config=cfg, desired_state=desired, active_users=users)
        inst.updated_at = t
    return inst


def get_instance(session: Session, instance_id: str) -> VnfInstance:
    return get_or_404(session, VnfInstance, instance_id, "NF instance")


def list_instances(
    session: Session,
    node: str | None = None,
    owner: str | None = None,
    *,
    nf_name: str | None = None,
    desired_state: Presence | str | None = None,
) -> list[VnfInstance]:
    state = None
    if desired_state is not None:
        state = check.enum(Presence, desired_state, "desired_state")
    q = where_given(
        sa.select(VnfInstance).order_by(VnfInstance.id),
        (VnfInstance.node_name, node),
        (VnfInstance.owner, owner),
        (VnfInstance.nf_name, nf_name),
        (VnfInstance.desired_state, state),
    )
    return list(session.scalars(q))


def _update(session: Session, instance_id: str, now: float | None, **values: Any) -> VnfInstance:
    """Set already-checked columns of one instance and stamp it; NotFound if it is unknown."""
    inst = get_instance(session, instance_id)
    with guard(session, f"NF instance {instance_id!r}"):
        for column, value in values.items():
            setattr(inst, column, value)
        inst.updated_at = stamp(now)
    return inst


def set_instance_actual_state(
    session: Session, instance_id: str, state: ActualState | str, *, now: float | None = None
) -> VnfInstance:
    """What the node's agent reports the instance is doing."""
    actual = check.enum(ActualState, state, "actual_state")
    return _update(session, instance_id, now, actual_state=actual)


def set_instance_desired_state(
    session: Session, instance_id: str, state: Presence | str, *, now: float | None = None
) -> VnfInstance:
    """present: the node should run it; absent: the node should remove it."""
    desired = check.enum(Presence, state, "desired_state")
    return _update(session, instance_id, now, desired_state=desired)


def set_instance_active_users(
    session: Session, instance_id: str, users: Sequence[str], *, now: float | None = None
) -> VnfInstance:
    """The users whose traffic currently crosses the instance (Table II's active users)."""
    active = check.str_list("active_users", users, unique=True)
    return _update(session, instance_id, now, active_users=active)


def delete_instance(session: Session, instance_id: str) -> None:
    """Forget an instance (after its node removed it). Notifications about it are kept."""
    inst = session.get(VnfInstance, instance_id)
    if inst is None:
        raise NotFound(f"NF instance {instance_id!r} does not exist")
    with guard(session, f"NF instance {instance_id!r}"):
        session.delete(inst)
