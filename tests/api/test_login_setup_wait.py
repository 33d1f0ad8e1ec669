"""A login is answered once the user's NFs are up, not at the orchestrator's 202: the portal
reads the operations the association opened (access/setup_wait.py). A chain whose NF refused
its configuration (422) is a fault of the configuration; one the node failed (500) is worth
another try; one that completed is a success (probe of 2026-12-06: a VPN whose key file was
missing was answered "logged in" while its user stayed captive)."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from netfate.access.portal import AcceptError
from netfate.access.setup_wait import op_ids, wait_for_ops
from tests.api.conftest import MakeAgent

API = "/api/v1"


def _login(client: httpx.Client) -> list[str]:
    r = client.post(f"{API}/users", json={"name": "user1", "password": "secret1",
                                          "required_nfs": ["firewall"]})
    assert r.status_code == 201, r.text
    r = client.post(f"{API}/users/user1/associate",
                    json={"node": "cpe1", "mac": "02:00:00:00:00:01", "ip": "10.0.0.2",
                          "login": True})
    assert r.status_code == 202, r.text
    ops = op_ids(r.json())
    assert len(ops) == 1, r.text
    return ops


def test_a_chain_that_starts_is_a_login_that_succeeds(client: httpx.Client,
                                                      make_agent: MakeAgent) -> None:
    make_agent("cpe1")
    ops = _login(client)
    wait_for_ops(client, "", ops)
    assert client.get(f"{API}/vnf_lcm_op_occs/{ops[0]}").json()["operation_state"] == \
        "COMPLETED"


def test_an_nf_refusing_its_configuration_is_the_users_fault(
        client: httpx.Client, make_agent: MakeAgent) -> None:
    agent = make_agent("cpe1")
    agent.mode, agent.fail_status = "fail", 422
    agent.fail_error = "psk_file /run/x/psk: cannot read it"
    ops = _login(client)
    with pytest.raises(AcceptError, match="psk_file /run/x/psk: cannot read it") as e:
        wait_for_ops(client, "", ops)
    assert e.value.config_fault and e.value.status == 409
    assert "cpe1-user1-firewall" in str(e.value)
    # Not steered to a chain whose NF does not exist: no rule recorded as installed that
    # the controller never built (the portal would call the device online).
    time.sleep(0.5)  # the plan's steps after the failed one have run
    assert client.get(f"{API}/steering_rules", params={"node": "cpe1"}).json() == []


def test_a_node_failing_the_chain_is_worth_another_try(
        client: httpx.Client, make_agent: MakeAgent) -> None:
    agent = make_agent("cpe1")
    agent.mode = "fail"
    ops = _login(client)
    with pytest.raises(AcceptError, match=re.escape(agent.fail_error)) as e:
        wait_for_ops(client, "", ops)
    assert not e.value.config_fault and e.value.status == 502


def test_operations_still_running_at_the_deadline_are_left_to_finish(
        client: httpx.Client, make_agent: MakeAgent) -> None:
    agent = make_agent("cpe1")
    agent.mode = "silent"
    ops = _login(client)
    slept: list[float] = []
    wait_for_ops(client, "", ops, deadline_s=0.3, sleep=slept.append)
    assert slept and all(s <= 0.3 for s in slept)


@pytest.mark.parametrize("body", [None, [], "x", {"vnf_lcm_op_occs": "abc"},
                                  {"vnf_lcm_op_occs": [1, None, "", "x" * 65]}])
def test_a_body_without_operation_ids_names_none(body: Any) -> None:
    assert op_ids(body) == []


def test_an_unreadable_orchestrator_leaves_the_outcome_unknown_not_failed() -> None:
    with httpx.Client(base_url="http://127.0.0.1:9", timeout=0.5) as c:
        wait_for_ops(c, "", ["a-b-c"], deadline_s=0.2)  # nothing raised: the 202 was taken
