"""Lifecycle requests for one NF instance sent at the same moment: exactly one is accepted
(202), the others get 409 (or 404 once the accepted one has ended it), and the database ends
with one operation and one instance (SOL003 §5.4.1.2: one operation at a time per VNF
instance; lcm_records.claim_op)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import httpx

from tests.api.conftest import MakeAgent
from tests.api.harness import AUTH, wait_op
from tests.api.test_api_faults import API, FW, add_user, instance, instantiate

PARALLEL = 8


def _at_once(base_url: str, requests: list[tuple[str, str, Any]]) -> list[httpx.Response]:
    """Each request from its own thread and connection, released together by a barrier."""
    gate = threading.Barrier(len(requests))
    out: list[httpx.Response | None] = [None] * len(requests)

    def send(i: int, method: str, path: str, body: Any) -> None:
        with httpx.Client(base_url=base_url, timeout=30, headers=AUTH) as c:
            c.get(f"{API}/health")  # connected before the gate
            gate.wait()
            out[i] = c.request(method, API + path, json=body)

    threads = [threading.Thread(target=send, args=(i, *r)) for i, r in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r is not None for r in out), "a request did not come back"
    return [r for r in out if r is not None]


def _statuses(rs: list[httpx.Response]) -> Counter[int]:
    return Counter(r.status_code for r in rs)


def _ops_on(c: httpx.Client, iid: str) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = c.get(f"{API}/vnf_lcm_op_occs").json()
    return [o for o in ops if o["vnf_instance_id"] == iid]


def test_parallel_instantiates_of_one_instance_accept_one(client: httpx.Client,
                                                          make_agent: MakeAgent) -> None:
    make_agent("cpe1")
    add_user(client)
    body = {"nf": "firewall", "owner": "user1", "node": "cpe1", "config": {}}
    rs = _at_once(str(client.base_url), [("POST", "/vnf_instances", body)] * PARALLEL)
    assert _statuses(rs) == {202: 1, 409: PARALLEL - 1}, [r.text for r in rs]
    for r in rs:
        if r.status_code == 409:
            assert FW in r.json()["detail"], r.text
    (ok,) = [r for r in rs if r.status_code == 202]
    assert wait_op(client, ok.json()["vnf_lcm_op_occs"][0])["operation_state"] == "COMPLETED"
    assert len(_ops_on(client, FW)) == 1


def test_parallel_terminates_accept_one(client: httpx.Client, make_agent: MakeAgent) -> None:
    make_agent("cpe1")
    add_user(client)
    assert wait_op(client, instantiate(client))["operation_state"] == "COMPLETED"
    rs = _at_once(str(client.base_url), [("POST", f"/vnf_instances/{FW}/terminate", None)]
                  * PARALLEL)
    got = _statuses(rs)
    assert got[202] == 1 and got[409] + got[404] == PARALLEL - 1, [r.text for r in rs]
    (ok,) = [r for r in rs if r.status_code == 202]
    assert wait_op(client, ok.json()["vnf_lcm_op_occs"][0])["operation_state"] == "COMPLETED"
    assert [o["operation"] for o in _ops_on(client, FW)] == ["INSTANTIATE", "TERMINATE"]
    assert instance(client, FW) is None


def test_update_migrate_and_terminate_at_once_accept_one(client: httpx.Client,
                                                         make_agent: MakeAgent) -> None:
    make_agent("cpe1")
    make_agent("cpe2")
    add_user(client)
    assert wait_op(client, instantiate(client))["operation_state"] == "COMPLETED"
    before = instance(client, FW)
    reqs: list[tuple[str, str, Any]] = [
        ("PATCH", f"/vnf_instances/{FW}", {"config": {"default_in": "allow"}}),
        ("POST", f"/vnf_instances/{FW}/terminate", None),
        ("POST", f"/vnf_instances/{FW}/migrate", {"node": "cpe2"}),
    ] * 2
    rs = _at_once(str(client.base_url), reqs)
    got = _statuses(rs)
    assert got[202] == 1 and got[409] + got[404] == len(reqs) - 1, [r.text for r in rs]
    (ok,) = [r for r in rs if r.status_code == 202]
    op = wait_op(client, ok.json()["vnf_lcm_op_occs"][0])
    assert op["operation_state"] == "COMPLETED", op
    assert len(_ops_on(client, FW)) == 2  # the instantiate and the one accepted
    after = instance(client, FW)
    if op["operation"] == "UPDATE":
        assert after is not None and after["config"] == {"default_in": "allow"}
    elif op["operation"] == "TERMINATE":
        assert after is None
    else:
        assert after is None or after["desired_state"] == "absent"
    assert before is not None and before["config"] == {}


def test_a_migrations_target_is_held_while_it_runs(client: httpx.Client,
                                                   make_agent: MakeAgent) -> None:
    """(review, 2026-12-05) An instantiate of the id a migration in progress moves to was
    accepted, and would have overwritten the migrated NF's record."""
    make_agent("cpe1")
    target = make_agent("cpe2")
    add_user(client)
    assert wait_op(client, instantiate(client))["operation_state"] == "COMPLETED"
    target.mode = "silent"  # the migration waits on cpe2: PROCESSING meanwhile
    r = client.post(f"{API}/vnf_instances/{FW}/migrate", json={"node": "cpe2"})
    assert r.status_code == 202, r.text
    new_iid = "cpe2-user1-firewall"
    body = {"nf": "firewall", "owner": "user1", "node": "cpe2", "config": {}}

    def refused() -> None:
        for method, path, json_body in (("POST", "/vnf_instances", body),
                                        ("POST", f"/vnf_instances/{new_iid}/terminate", None)):
            r = client.request(method, API + path, json=json_body)
            assert r.status_code == 409, r.text
            assert "target of the migration" in r.json()["detail"] and FW in r.json()["detail"]

    refused()
    # Once the migration has recorded its target, the error still names the migration
    # (it said "already exists" when the record was there first: a flake in a full run).
    deadline = time.monotonic() + 5
    while client.get(f"{API}/vnf_instances/{new_iid}").status_code != 200:
        assert time.monotonic() < deadline, "the migration never recorded its target"
        time.sleep(0.02)
    refused()
    assert [o["operation"] for o in _ops_on(client, new_iid)] == []
