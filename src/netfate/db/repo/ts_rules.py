"""TS rules (NNF paper, Table I) per node: what an operator (or a benchmark) asked the node's
LSI to do, validated as controller.model.TSRule and published in the node's switch state."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.orm import Session

from netfate.controller.model import TSRule, stored_rules
from netfate.db.models import Node, TsRule
from netfate.db.repo._common import get_or_404, guard, stamp
from netfate.errors import Conflict, InvalidInput, NotFound

# TS rules a node holds at most: each is a flow on its switch, published in every switch state
# of the node (and troubleshooting adds its own), so an unbounded count would grow every
# state the controller installs. OVS takes far more; an operator's explicit orders are few.
MAX_PER_NODE = 1024


def check_rule(data: Any, index: int | None = None) -> TSRule:
    """A TS rule from JSON-able data; InvalidInput saying what is wrong and which rule
    (its id, or its place in a list). Rule ids are also reached by URL path
    (/nodes/{node}/ts_rules/{rule_id}): one with a '/', '%' or '\\' (clients read those
    as a separator, an escape, a separator), or that is '.' or '..', could not reliably be,
    and is refused."""
    if isinstance(data, TSRule):
        return data
    which = _which(data, index)
    try:
        rule = TSRule.model_validate(data)
    except ValidationError as exc:
        what = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'rule'}: {e['msg']}"
                         for e in exc.errors())
        raise InvalidInput(f"bad TS rule{which}: {what}") from None
    twice = sorted({o for o in rule.output if rule.output.count(o) > 1})
    if twice:  # one output action per port: a second copy of each packet was meant?
        raise InvalidInput(f"bad TS rule{which}: output names {twice} more than once")
    if any(c in rule.rule_id for c in "/%\\") or rule.rule_id in (".", ".."):
        raise InvalidInput(f"bad TS rule{which}: rule_id {rule.rule_id!r} cannot be part of "
                           "a URL path as it is (no '/', '%' or '\\', and not '.' or '..')")
    return rule


def _which(data: Any, index: int | None) -> str:
    rid = data.get("rule_id") if isinstance(data, dict) else None
    parts = ([f"#{index}"] if index is not None else []) + (
        [repr(rid[:64])] if isinstance(rid, str) else [])
    return f" {' '.join(parts)}" if parts else ""


def put_ts_rules(session: Session, node: str, rules: Sequence[Any],
                 now: float | None = None) -> list[TsRule]:
    """Create or replace rules at ``node``, by rule_id. NotFound for an unknown node,
    InvalidInput for a bad rule, a rule id given twice or more than MAX_PER_NODE rules;
    Conflict when the node would then hold more than MAX_PER_NODE (nothing is written)."""
    if len(rules) > MAX_PER_NODE:
        raise InvalidInput(f"{len(rules)} TS rules; a node holds at most {MAX_PER_NODE}")
    checked = [check_rule(r, k if len(rules) > 1 else None) for k, r in enumerate(rules)]
    ids = [r.rule_id for r in checked]
    if len(set(ids)) != len(ids):
        raise InvalidInput(f"a rule id is given twice: {ids}")
    get_or_404(session, Node, node, "node")
    have = {r.rule_id: r for r in session.scalars(
        sa.select(TsRule).where(TsRule.node_name == node, TsRule.rule_id.in_(ids)))}
    held = session.scalar(sa.select(sa.func.count()).select_from(TsRule)
                          .where(TsRule.node_name == node)) or 0
    if held + len(set(ids) - set(have)) > MAX_PER_NODE:
        raise Conflict(f"node {node!r} holds {held} TS rules and these add "
                       f"{len(set(ids) - set(have))}; a node holds at most {MAX_PER_NODE} "
                       "(delete some first)")
    _no_rivals(session, node, checked)
    t = stamp(now)
    out = []
    with guard(session, f"TS rules at {node!r}",
               unique=Conflict(f"a TS rule at {node!r} was added concurrently")):
        for r in checked:
            row = have.get(r.rule_id)
            if row is None:
                row = TsRule(node_name=node, rule_id=r.rule_id)
                session.add(row)
            row.priority = r.priority
            row.match = r.match.model_dump(mode="json", exclude_none=True)
            row.output = list(r.output)
            row.updated_at = t
            out.append(row)
    return out


def _no_rivals(session: Session, node: str, rules: Sequence[TSRule]) -> None:
    """InvalidInput if two rules the node would hold (these, and those they do not
    replace) have one priority and one match but other outputs: OpenFlow keeps one flow
    per match and priority, so which order held would depend on the order of writing
    (OpenFlow 1.3 §6.4; both were accepted: probe of 2026-12-06)."""
    new = {r.rule_id for r in rules}
    held = stored_rules(  # (a stored rule the model now refuses is left out, logged)
        [{"rule_id": rid, "priority": prio, "match": m, "output": o}
         for rid, prio, m, o in session.execute(
             sa.select(TsRule.rule_id, TsRule.priority, TsRule.match, TsRule.output)
             .where(TsRule.node_name == node)) if rid not in new], f"node {node}")
    seen: dict[tuple[int, str], TSRule] = {}
    for r in [*held, *rules]:
        key = (r.priority, r.match.model_dump_json(exclude_none=True))
        other = seen.get(key)
        if other is not None and tuple(other.output) != tuple(r.output):
            raise InvalidInput(f"TS rules {other.rule_id!r} and {r.rule_id!r} at {node!r} "
                               f"have priority {r.priority} and the same match but other "
                               "outputs: a switch holds one of them; give them other "
                               "priorities")
        seen.setdefault(key, r)


def delete_ts_rules(session: Session, node: str, rule_ids: Iterable[str]) -> int:
    """Remove rules by id at ``node``; how many there were. NotFound for an unknown node."""
    get_or_404(session, Node, node, "node")
    ids = list(rule_ids)
    rows = list(session.scalars(
        sa.select(TsRule).where(TsRule.node_name == node, TsRule.rule_id.in_(ids))))
    with guard(session, f"TS rules at {node!r}"):
        for row in rows:
            session.delete(row)
    return len(rows)


def get_ts_rule(session: Session, node: str, rule_id: str) -> TsRule:
    row = session.scalar(sa.select(TsRule).where(TsRule.node_name == node,
                                                 TsRule.rule_id == rule_id))
    if row is None:
        get_or_404(session, Node, node, "node")
        raise NotFound(f"no TS rule {rule_id!r} at {node!r}")
    return row


def list_ts_rules(session: Session, node: str | None = None) -> list[TsRule]:
    q = sa.select(TsRule).order_by(TsRule.node_name, TsRule.rule_id)
    if node is not None:
        q = q.where(TsRule.node_name == node)
    return list(session.scalars(q))


def ts_rules_for(session: Session, node: str) -> tuple[TSRule, ...]:
    """The node's rules as the switch state takes them."""
    return tuple(stored_rules(({"rule_id": r.rule_id, "priority": r.priority, "match": r.match,
                                "output": r.output} for r in list_ts_rules(session, node)),
                              f"node {node}"))
