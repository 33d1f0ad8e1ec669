"""The closed loop in the orchestrator (reaction_policy = block-flood-sources), with a fake
agent on the bus: a flood notification from an NF becomes an UPDATE operation that puts a
DROP rule for the source first in the owner's firewall; a repeat changes nothing more."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from netfate.bus import subjects
from netfate.bus.messages import Notification
from tests.api.conftest import MakeAgent, MakeLive
from tests.api.harness import LiveOrchestrator, wait_op, wait_until
from tests.api.test_api_faults import API, FW, add_user, instance, instantiate

RULE = {"action": "deny", "direction": "out", "proto": "any", "src": "10.90.1.11/32"}
KEEP = {"action": "allow", "proto": "tcp", "dport": 443}


@pytest.fixture
def live(make_live: MakeLive) -> LiveOrchestrator:
    return make_live(reaction_policy="block-flood-sources")


def flood(owner: str | None = "user1", source: str = "10.90.1.11") -> str:
    # nf_id: an NF of the owner on cpe1 (the closed loop reacts only to those)
    return Notification(node="cpe1", nf_id=FW, nf="packet-inspector", owner=owner, type="flood",
                        severity="critical", source=source, detail={"pps": 5000},
                        ts=time.time()).model_dump_json()


def updates(c: httpx.Client) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = c.get(f"{API}/vnf_lcm_op_occs").json()
    return [o for o in ops if o["operation"] == "UPDATE"]


def test_a_flood_becomes_a_drop_rule_in_the_owners_firewall(
        client: httpx.Client, make_agent: MakeAgent) -> None:
    agent = make_agent("cpe1")
    add_user(client)
    op = instantiate(client, config={"rules": [KEEP]})
    assert wait_op(client, op)["operation_state"] == "COMPLETED"
    agent.loop.run(agent._publish(subjects.notify("cpe1"), flood()))
    (upd,) = wait_until(lambda: updates(client), 5, "the reaction's UPDATE operation")
    assert wait_op(client, upd["id"])["operation_state"] == "COMPLETED"
    inst = instance(client, FW)
    assert inst is not None and inst["config"]["rules"] == [RULE, KEEP]
    # the same flood again, one without an owner, and one whose NF is not the owner's (an
    # NF writes its own notification, owner included): nothing more to do
    agent.loop.run(agent._publish(subjects.notify("cpe1"), flood()))
    agent.loop.run(agent._publish(subjects.notify("cpe1"), flood(owner=None, source="10.9.9.9")))
    forged = Notification.model_validate_json(flood(source="10.9.9.8")).model_copy(
        update={"nf_id": "cpe1-user2-packet-inspector"}).model_dump_json()
    agent.loop.run(agent._publish(subjects.notify("cpe1"), forged))
    time.sleep(1.0)
    assert len(updates(client)) == 1


def test_floods_from_two_sources_at_once_both_end_up_in_the_firewall(
        client: httpx.Client, make_agent: MakeAgent) -> None:
    """Notifications of one owner arriving together are handled in order and batched: no
    update starts from a config that lacks an earlier one's rule."""
    agent = make_agent("cpe1")
    add_user(client)
    op = instantiate(client, config={"rules": [KEEP]})
    assert wait_op(client, op)["operation_state"] == "COMPLETED"
    for src in ("10.90.1.11", "10.90.1.12", "10.90.1.13"):
        agent.loop.run(agent._publish(subjects.notify("cpe1"), flood(source=src)))
    want = [{**RULE, "src": f"10.90.1.{n}/32"} for n in (13, 12, 11)]

    def both() -> bool:
        inst = instance(client, FW)
        rules = inst["config"]["rules"] if inst else []
        return sorted(map(str, rules)) == sorted(map(str, [*want, KEEP]))

    wait_until(both, 10, "every source's DROP rule in the firewall")
    assert all(wait_op(client, u["id"])["operation_state"] == "COMPLETED"
               for u in updates(client))
    assert len(updates(client)) <= 3
