"""Graceful overload (orchestrator/admission.py): past max_events_in_flight user events the
API refuses new ones at once with 429 and Retry-After, changes nothing for them, and what
was admitted runs to its end; once there is room again events are taken as before."""

from __future__ import annotations

import httpx

from tests.api.conftest import MakeAgent
from tests.api.harness import LiveOrchestrator, assert_problem, wait_op, wait_until

API = "/api/v1"


def _user(c: httpx.Client, name: str) -> None:
    r = c.post(f"{API}/users", json={"name": name, "password": "secret1",
                                      "required_nfs": ["firewall"]})
    assert r.status_code == 201, r.text


def test_past_capacity_new_events_get_429_and_admitted_ones_finish(
        live: LiveOrchestrator, client: httpx.Client, make_agent: MakeAgent) -> None:
    live.orch.coordinator.admission.limit = 1  # max_events_in_flight=1
    agent = make_agent("cpe1")
    c = client
    adm = live.orch.coordinator.admission
    _user(c, "user1")
    _user(c, "user2")
    agent.mode = "silent"  # user1's placement waits for the command timeout (2 s)
    r1 = c.post(f"{API}/users/user1/associate",
                json={"node": "cpe1", "mac": "02:00:00:00:00:01"})
    assert r1.status_code == 202, r1.text
    (op1,) = r1.json()["vnf_lcm_op_occs"]

    r2 = c.post(f"{API}/users/user2/associate",
                json={"node": "cpe1", "mac": "02:00:00:00:00:02"})
    body = assert_problem(r2, 429, "in flight", "retry")
    assert int(r2.headers["Retry-After"]) >= 1, r2.headers
    assert body["title"] == "Too Many Requests"
    # Nothing was done for the refused event.
    u2 = c.get(f"{API}/users/user2").json()
    assert u2["access_node"] is None, u2
    r_idle = c.post(f"{API}/users/user2/idle")
    assert_problem(r_idle, 429, "in flight")

    # The admitted event runs to its end (its agent never answered: rolled back by the
    # command timeout, not for lack of room), and then there is room again.
    assert wait_op(c, op1)["operation_state"] in ("ROLLED_BACK", "FAILED_TEMP", "FAILED")
    wait_until(lambda: adm.in_flight == 0, 5, "user1's plan to run to its end")
    agent.mode = "ok"
    r3 = c.post(f"{API}/users/user2/associate",
                json={"node": "cpe1", "mac": "02:00:00:00:00:02"})
    assert r3.status_code == 202, r3.text
    (op3,) = r3.json()["vnf_lcm_op_occs"]
    assert wait_op(c, op3)["operation_state"] == "COMPLETED"
    assert adm.refused == 2
