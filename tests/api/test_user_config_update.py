"""A logged-in user's edited nf_config reaches the NF they have running (an UPDATE
occurrence per NF whose config changed), not only their next login (probe of
2026-12-06: PATCH /users 200, the firewall kept its old rules)."""

from __future__ import annotations

import httpx

from tests.api.conftest import MakeAgent
from tests.api.harness import LiveOrchestrator, wait_op

API = "/api/v1"
IID = "cpe1-ann-firewall"
DENY_WEB = {"rules": [{"action": "deny", "proto": "tcp", "dport": 80}]}


def test_a_new_nf_config_updates_the_running_nf(
        live: LiveOrchestrator, client: httpx.Client, make_agent: MakeAgent) -> None:
    c = client
    make_agent("cpe1")
    r = c.post(f"{API}/users", json={"name": "ann", "password": "secret1",
                                      "required_nfs": ["firewall"]})
    assert r.status_code == 201, r.text
    # Not logged in: nothing runs, nothing to update.
    r = c.patch(f"{API}/users/ann", json={"nf_config": {"firewall": {}}})
    assert r.status_code == 200 and r.json()["vnf_lcm_op_occs"] == [], r.text

    r = c.post(f"{API}/users/ann/associate", json={"node": "cpe1", "ip": "10.90.5.7"})
    (op,) = r.json()["vnf_lcm_op_occs"]
    assert wait_op(c, op)["operation_state"] == "COMPLETED"
    assert c.get(f"{API}/vnf_instances/{IID}").json()["config"] == {}

    r = c.patch(f"{API}/users/ann", json={"nf_config": {"firewall": DENY_WEB}})
    assert r.status_code == 200, r.text
    (op,) = r.json()["vnf_lcm_op_occs"]
    done = wait_op(c, op)
    assert done["operation_state"] == "COMPLETED", done
    assert done["vnf_instance_id"] == IID
    assert c.get(f"{API}/vnf_instances/{IID}").json()["config"] == DENY_WEB

    # The same config again: nothing to update.
    r = c.patch(f"{API}/users/ann", json={"nf_config": {"firewall": DENY_WEB}})
    assert r.status_code == 200 and r.json()["vnf_lcm_op_occs"] == [], r.text


def test_what_is_created_is_located(live: LiveOrchestrator, client: httpx.Client,
                                    make_agent: MakeAgent) -> None:
    """201 and 202 say where the new resource is (RFC 9110 §15.3.2; SOL003 §5.4.4.3.1:
    the operation occurrence of a lifecycle request). They had no Location (probe of
    2026-12-06)."""
    c = client
    make_agent("cpe1")
    r = c.post(f"{API}/users", json={"name": "bo", "password": "secret1"})
    assert r.status_code == 201 and r.headers["Location"] == f"{API}/users/bo"
    assert c.get(r.headers["Location"]).json()["name"] == "bo"
    r = c.post(f"{API}/subscriptions", json={"callbackUri": "http://127.0.0.1:9/cb"})
    assert r.status_code == 201, r.text
    assert c.get(r.headers["Location"]).json()["id"] == r.json()["id"]
    r = c.post(f"{API}/vnf_instances", json={"nf": "firewall", "owner": "bo",
                                              "node": "cpe1"})
    assert r.status_code == 202, r.text
    (op,) = r.json()["vnf_lcm_op_occs"]
    assert r.headers["Location"] == f"{API}/vnf_lcm_op_occs/{op}"
    assert wait_op(c, op)["operation_state"] == "COMPLETED"


def test_a_muted_nf_stays_muted_when_it_moves(live: LiveOrchestrator, client: httpx.Client,
                                              make_agent: MakeAgent) -> None:
    """A migration makes a new instance id; the operator's mute was keyed by the old one
    and the moved NF's notifications came back (probe of 2026-12-06)."""
    from netfate.db import repo

    c = client
    make_agent("cpe1")
    make_agent("cpe2")
    c.post(f"{API}/users", json={"name": "cy", "password": "secret1"})
    r = c.post(f"{API}/vnf_instances", json={"nf": "firewall", "owner": "cy", "node": "cpe1"})
    assert wait_op(c, r.json()["vnf_lcm_op_occs"][0])["operation_state"] == "COMPLETED"
    assert c.put(f"{API}/vnf_instances/cpe1-cy-firewall/mute").status_code == 204
    r = c.post(f"{API}/vnf_instances/cpe1-cy-firewall/migrate", json={"node": "cpe2"})
    assert r.status_code == 202, r.text
    assert wait_op(c, r.json()["vnf_lcm_op_occs"][0])["operation_state"] == "COMPLETED"
    assert live.orch.db is not None
    with live.orch.db.session() as s:
        assert repo.is_muted(s, "cpe2-cy-firewall")
        # another owner's firewall is not muted by it
        assert not repo.is_muted(s, "cpe2-other-firewall")
