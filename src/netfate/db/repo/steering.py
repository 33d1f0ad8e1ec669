"""Steering rules (the paper's Table III): the chain each user's traffic crosses at a node.

A rule the orchestrator no longer wants is kept with desired=False until the controller
reports it removed (mark_steering_installed(..., installed=False)), so the removal itself is
tracked. A rule that was never installed is deleted at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.db.models import Node, SteeringRule, User
from netfate.db.repo import check
from netfate.db.repo._common import get_or_404, guard, stamp, where_given
from netfate.errors import Conflict, NotFound


def _find(session: Session, user: str, node: str) -> SteeringRule | None:
    return session.scalar(
        sa.select(SteeringRule).where(
            SteeringRule.user_name == user, SteeringRule.node_name == node
        )
    )


def set_steering(
    session: Session,
    *,
    user: str,
    node: str,
    chain: Sequence[str],
    mac: str | None = None,
    ip: str | None = None,
    now: float | None = None,
) -> SteeringRule:
    """Steer ``user``'s traffic at ``node`` through ``chain`` (instance ids / NF ports, in
    order). mac and ip default to the user's current ones. A change marks it not installed."""
    hops = check.str_list("chain", chain)
    u = get_or_404(session, User, user, "user")
    get_or_404(session, Node, node, "node")
    mac = check.text("mac", mac if mac is not None else u.mac, optional=True)
    ip = check.text("ip", ip if ip is not None else u.ip, optional=True)
    t = stamp(now)
    rule = _find(session, user, node)
    with guard(
        session,
        f"steering rule for {user!r} at {node!r}",
        unique=Conflict(f"a steering rule for {user!r} at {node!r} was added concurrently"),
    ):
        if rule is None:
            rule = SteeringRule(user_name=user, node_name=node, installed=False)
            session.add(rule)
        elif (rule.chain, rule.mac, rule.ip, rule.desired) == (hops, mac, ip, True):
            return rule  # unchanged: stays installed
        rule.chain = hops
        rule.mac = mac
        rule.ip = ip
        rule.desired = True
        rule.installed = False
        rule.updated_at = t
    return rule


def clear_steering(
    session: Session, *, user: str, node: str | None = None, now: float | None = None
) -> int:
    """Stop steering ``user`` at ``node`` (or everywhere). Returns how many rules it touched.
    Installed rules stay, with desired=False, until the controller reports them removed."""
    q = sa.select(SteeringRule).where(SteeringRule.user_name == user)
    if node is not None:
        q = q.where(SteeringRule.node_name == node)
    rules = [r for r in session.scalars(q) if r.desired or not r.installed]
    t = stamp(now)
    with guard(session, f"steering rules for {user!r}"):
        for r in rules:
            if r.installed:
                r.desired = False
                r.updated_at = t
            else:
                session.delete(r)
    return len(rules)


def mark_steering_installed(
    session: Session, *, user: str, node: str, installed: bool, now: float | None = None
) -> SteeringRule | None:
    """The controller's report. Returns the rule, or None if the report completed a removal."""
    rule = _find(session, user, node)
    if rule is None:
        raise NotFound(f"no steering rule for {user!r} at {node!r}")
    with guard(session, f"steering rule for {user!r} at {node!r}"):
        if not installed and not rule.desired:
            session.delete(rule)
            return None
        rule.installed = bool(installed)
        rule.updated_at = stamp(now)
    return rule


def list_steering(
    session: Session,
    node: str | None = None,
    *,
    user: str | None = None,
    desired: bool | None = None,
) -> list[SteeringRule]:
    q = where_given(
        sa.select(SteeringRule).order_by(SteeringRule.node_name, SteeringRule.user_name),
        (SteeringRule.node_name, node),
        (SteeringRule.user_name, user),
        (SteeringRule.desired, desired),
    )
    return list(session.scalars(q))
