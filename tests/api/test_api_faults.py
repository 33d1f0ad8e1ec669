"""The NF coordinator through the API, with fake agents on the bus: lifecycle operations end
COMPLETED or ROLLED_BACK (never stuck PROCESSING) whatever the agent does, and afterwards the
node holds exactly the NFs the database says."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import httpx
import pytest

from netfate import naming
from netfate.bus.messages import Command
from tests.api.conftest import MakeAgent, MakeLive
from tests.api.harness import (
    AUTH,
    FakeAgent,
    LiveOrchestrator,
    LoopThread,
    assert_problem,
    wait_op,
    wait_until,
)

API = "/api/v1"
FW = "cpe1-user1-firewall"
TIMEOUT = 2.0  # the live fixture's command_timeout
# How long an operation may take to end when its agent does not answer: the command's
# timeout, plus the time to record it and a margin for a loaded 2-core machine.
NO_ANSWER_BOUND = TIMEOUT + 1.5


def add_user(c: httpx.Client, name: str = "user1", **kw: Any) -> None:
    r = c.post(f"{API}/users", json={"name": name, "password": "secret1", **kw})
    assert r.status_code == 201, r.text


def instantiate(c: httpx.Client, node: str = "cpe1", nf: str = "firewall",
                owner: str = "user1", config: dict[str, Any] | None = None) -> str:
    r = c.post(f"{API}/vnf_instances", json={"nf": nf, "owner": owner, "node": node,
                                              "config": config or {}})
    assert r.status_code == 202, r.text
    ops: list[str] = r.json()["vnf_lcm_op_occs"]
    assert len(ops) == 1
    return ops[0]


def present_on(c: httpx.Client, node: str) -> set[str]:
    """What the database says the node should run."""
    r = c.get(f"{API}/vnf_instances", params={"node": node})
    return {i["id"] for i in r.json() if i["desired_state"] == "present"}


def instance(c: httpx.Client, iid: str) -> dict[str, Any] | None:
    r = c.get(f"{API}/vnf_instances/{iid}")
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def desired_ids(cmd: Command) -> set[str]:
    assert cmd.desired is not None
    return {i.instance_id for i in cmd.desired.instances}


def converged(c: httpx.Client, agent: FakeAgent) -> bool:
    """The node runs exactly what the database wants there, and the database holds no
    instance it wants gone (the agent confirmed the removal)."""
    rows = c.get(f"{API}/vnf_instances", params={"node": agent.name}).json()
    want = {i["id"] for i in rows if i["desired_state"] == "present"}
    return agent.running_ids() == want and len(rows) == len(want)


# -- the happy paths --------------------------------------------------------------------------

def test_instantiate_completes(client: httpx.Client, make_agent: MakeAgent) -> None:
    agent = make_agent("cpe1")
    add_user(client)
    op = wait_op(client, instantiate(client, config={"default_in": "allow"}))
    assert op["operation_state"] == "COMPLETED", op
    assert op["operation"] == "INSTANTIATE" and op["vnf_instance_id"] == FW
    assert op["error"] is None
    inst = instance(client, FW)
    assert inst is not None
    assert (inst["desired_state"], inst["actual_state"]) == ("present", "running")
    assert inst["config"] == {"default_in": "allow"}
    assert agent.running_ids() == {FW}
    # The apply named the bundle and where to fetch it: the orchestrator serves it.
    apply = [c for c in agent.commands if c.op == "apply"][-1]
    (sha, url), = apply.bundles.items()
    assert sha == inst["bundle_sha256"]
    got = httpx.get(url, timeout=10)
    assert got.status_code == 200 and len(got.content) > 0
    assert client.get(f"{API}/vnf_lcm_op_occs", params={"state": "PROCESSING"}).json() == []


def test_terminate(client: httpx.Client, make_agent: MakeAgent) -> None:
    agent = make_agent("cpe1")
    add_user(client)
    assert wait_op(client, instantiate(client))["operation_state"] == "COMPLETED"
    r = client.post(f"{API}/vnf_instances/{FW}/terminate")
    assert r.status_code == 202, r.text
    op = wait_op(client, r.json()["vnf_lcm_op_occs"][0])
    assert (op["operation"], op["operation_state"]) == ("TERMINATE", "COMPLETED"), op
    assert instance(client, FW) is None
    assert agent.running_ids() == set()
    # Terminated is gone: another terminate is a 404.
    assert_problem(client.post(f"{API}/vnf_instances/{FW}/terminate"), 404, FW)


def test_update_config(client: httpx.Client, make_agent: MakeAgent) -> None:
    agent = make_agent("cpe1")
    add_user(client)
    assert wait_op(client, instantiate(client))["operation_state"] == "COMPLETED"
    new = {"default_in": "allow", "rules": [{"action": "deny", "proto": "tcp", "dport": 23}]}
    r = client.patch(f"{API}/vnf_instances/{FW}", json={"config": new})
    assert r.status_code == 202, r.text
    op = wait_op(client, r.json()["vnf_lcm_op_occs"][0])
    assert (op["operation"], op["operation_state"]) == ("UPDATE", "COMPLETED"), op
    inst = instance(client, FW)
    assert inst is not None and inst["config"] == new
    assert agent.running[FW].config == new


def test_update_rejected_by_agent_restores_config(client: httpx.Client,
                                                  make_agent: MakeAgent) -> None:
    agent = make_agent("cpe1")
    add_user(client)
    old = {"default_in": "deny"}
    assert wait_op(client, instantiate(client, config=old))["operation_state"] == "COMPLETED"
    agent.mode = "fail"
    r = client.patch(f"{API}/vnf_instances/{FW}", json={"config": {"default_in": "allow"}})
    assert r.status_code == 202, r.text
    op = wait_op(client, r.json()["vnf_lcm_op_occs"][0])
    assert op["operation_state"] == "ROLLED_BACK", op
    assert agent.fail_error in op["error"]["detail"]
    inst = instance(client, FW)
    assert inst is not None and inst["config"] == old


def test_migrate_between_nodes(client: httpx.Client, make_agent: MakeAgent) -> None:
    src, dst = make_agent("cpe1"), make_agent("cpe2")
    add_user(client)
    cfg = {"default_in": "allow"}
    assert wait_op(client, instantiate(client, config=cfg))["operation_state"] == "COMPLETED"
    r = client.post(f"{API}/vnf_instances/{FW}/migrate", json={"node": "cpe2"})
    assert r.status_code == 202, r.text
    op = wait_op(client, r.json()["vnf_lcm_op_occs"][0])
    assert (op["operation"], op["operation_state"]) == ("MIGRATE", "COMPLETED"), op
    new = "cpe2-user1-firewall"
    assert op["params"]["new_instance_id"] == new
    # State exported on the source, imported on the target; then the source let go.
    exports = [c for c in src.commands if c.op == "export_state"]
    assert [c.instance_id for c in exports] == [FW]
    assert dst.imported[new]["from"] == "cpe1"
    assert dst.ops().index("import_state") > dst.ops().index("apply")
    wait_until(lambda: instance(client, FW) is None, 5, "the source instance to be deleted")
    inst = instance(client, new)
    assert inst is not None
    assert (inst["node_name"], inst["actual_state"], inst["config"]) == ("cpe2", "running", cfg)
    assert src.running_ids() == set() and dst.running_ids() == {new}


def test_migrate_onto_the_same_nf_of_the_owner(client: httpx.Client,
                                               make_agent: MakeAgent) -> None:
    """The owner already has that NF on the target: taking it over would lose it if the
    migration rolled back, so it is refused."""
    make_agent("cpe1")
    make_agent("cpe2")
    add_user(client)
    for node in ("cpe1", "cpe2"):
        assert wait_op(client, instantiate(client, node=node))["operation_state"] == "COMPLETED"
    r = client.post(f"{API}/vnf_instances/{FW}/migrate", json={"node": "cpe2"})
    assert_problem(r, 409, "cpe2-user1-firewall", "already has")
    assert present_on(client, "cpe1") == {FW}
    assert present_on(client, "cpe2") == {"cpe2-user1-firewall"}


def test_migrate_rolls_back_when_target_fails(client: httpx.Client,
                                              make_agent: MakeAgent) -> None:
    src, dst = make_agent("cpe1"), make_agent("cpe2")
    add_user(client)
    assert wait_op(client, instantiate(client))["operation_state"] == "COMPLETED"
    dst.mode = "fail"
    r = client.post(f"{API}/vnf_instances/{FW}/migrate", json={"node": "cpe2"})
    op = wait_op(client, r.json()["vnf_lcm_op_occs"][0])
    assert op["operation_state"] == "ROLLED_BACK", op
    assert dst.fail_error in op["error"]["detail"]
    # The source was never touched; the target holds nothing.
    assert "export_state" not in src.ops()
    inst = instance(client, FW)
    assert inst is not None and inst["desired_state"] == "present"
    assert src.running_ids() == {FW} and dst.running_ids() == set()
    dst.mode = "ok"
    wait_until(lambda: converged(client, dst) and converged(client, src), 5,
               "both nodes to hold what the database says")


def test_associate_places_steers_and_idle_releases(client: httpx.Client,
                                                   make_agent: MakeAgent) -> None:
    agent = make_agent("cpe1")
    add_user(client, required_nfs=["firewall"])
    r = client.post(f"{API}/users/user1/associate",
                    json={"node": "cpe1", "mac": "02:00:00:00:00:01", "ip": "10.0.0.2"})
    assert r.status_code == 202, r.text
    body = r.json()
    kinds = [i["kind"] for i in body["intents"]]
    assert kinds == ["place", "steer"], body
    assert body["intents"][0]["node"] == "cpe1" and body["intents"][0]["nf"] == "firewall"
    (op_id,) = body["vnf_lcm_op_occs"]
    op = wait_op(client, op_id)
    assert (op["operation"], op["operation_state"]) == ("INSTANTIATE", "COMPLETED"), op
    assert agent.running_ids() == {FW}

    def steered() -> bool:
        rules = client.get(f"{API}/steering_rules", params={"node": "cpe1"}).json()
        return [(x["user_name"], x["mac"], x["chain"], x["installed"]) for x in rules] == [
            ("user1", "02:00:00:00:00:01", [FW], True)]

    wait_until(steered, 5, "user1's steering rule at cpe1 to be installed")
    assert agent.steering == [
        ("user1", "02:00:00:00:00:01", [naming.nf_port(FW, "lan"), naming.nf_port(FW, "wan")])]
    user = client.get(f"{API}/users/user1").json()
    assert (user["access_node"], user["mac"], user["ip"]) == ("cpe1", "02:00:00:00:00:01",
                                                              "10.0.0.2")

    r = client.post(f"{API}/users/user1/idle")
    assert r.status_code == 202, r.text
    body = r.json()
    assert sorted(i["kind"] for i in body["intents"]) == ["release", "unsteer"], body
    (op_id,) = body["vnf_lcm_op_occs"]
    op = wait_op(client, op_id)
    assert (op["operation"], op["operation_state"]) == ("RELEASE", "COMPLETED"), op
    wait_until(lambda: instance(client, FW) is None, 5, "the firewall to be released")
    assert agent.running_ids() == set() and agent.steering == []
    assert client.get(f"{API}/users/user1").json()["access_node"] is None


# -- faults -----------------------------------------------------------------------------------

def test_agent_not_answering_rolls_back(client: httpx.Client, make_agent: MakeAgent) -> None:
    agent = make_agent("cpe1")
    add_user(client)
    agent.mode = "silent"  # it creates the NF, but the answer never comes
    t0 = time.monotonic()
    op_id = instantiate(client)
    op = wait_op(client, op_id, timeout=NO_ANSWER_BOUND + 10)
    took = time.monotonic() - t0
    assert op["operation_state"] == "ROLLED_BACK", op
    assert "did not answer" in op["error"]["detail"] and "cpe1" in op["error"]["detail"], op
    assert took <= NO_ANSWER_BOUND, f"the operation took {took:.1f}s to end"
    inst = instance(client, FW)
    assert inst is None or inst["desired_state"] == "absent", inst
    assert present_on(client, "cpe1") == set()
    # The agent comes back and registers: its desired state no longer has the NF, and the
    # half-made NF goes; the database forgets the instance once the node confirms.
    agent.mode = "ok"
    reg = agent.register()
    assert FW not in desired_ids(reg)
    wait_until(lambda: converged(client, agent) and agent.running_ids() == set(), 5,
               "cpe1 to hold exactly what the database says")
    assert instance(client, FW) is None


def test_agent_killed_during_instantiate(client: httpx.Client, make_agent: MakeAgent) -> None:
    """kill -9 of the agent while it creates the NF, then a restart: the operation ends (never
    stuck) and the node holds exactly the NFs the database says, none lost or duplicated."""
    agent = make_agent("cpe1")
    add_user(client, required_nfs=["firewall"])
    assert wait_op(client, instantiate(client, nf="rate-limiter"))["operation_state"] == \
        "COMPLETED"
    agent.mode = "silent"
    op_id = instantiate(client)
    wait_until(lambda: FW in agent.running_ids(), 5, "the agent to receive the apply")
    agent.kill()
    op = wait_op(client, op_id, timeout=NO_ANSWER_BOUND + 10)
    assert op["operation_state"] == "ROLLED_BACK", op
    reg = agent.restart()
    assert desired_ids(reg) == {"cpe1-user1-rate-limiter"}
    wait_until(lambda: converged(client, agent), 5, "cpe1 to hold what the database says")
    assert agent.running_ids() == {"cpe1-user1-rate-limiter"}
    assert client.get(f"{API}/vnf_lcm_op_occs", params={"state": "PROCESSING"}).json() == []


def test_agent_gone_fails_fast(client: httpx.Client, make_agent: MakeAgent) -> None:
    """No agent of the node on the bus at all: no responders, the operation ends at once."""
    agent = make_agent("cpe1")
    add_user(client)
    agent.kill()
    t0 = time.monotonic()
    op = wait_op(client, instantiate(client), timeout=10)
    assert op["operation_state"] == "ROLLED_BACK", op
    assert "cpe1" in op["error"]["detail"] and op["error"]["status"] == 504, op
    assert time.monotonic() - t0 < TIMEOUT
    agent.restart()
    wait_until(lambda: converged(client, agent), 5, "cpe1 to hold what the database says")
    assert agent.running_ids() == set()


def test_agent_failing_apply_rolls_back(client: httpx.Client, make_agent: MakeAgent) -> None:
    agent = make_agent("cpe1")
    add_user(client)
    agent.mode = "fail"
    op = wait_op(client, instantiate(client))
    assert op["operation_state"] == "ROLLED_BACK", op
    assert op["error"]["title"] and agent.fail_error in op["error"]["detail"], op
    assert op["error"]["status"] == 500, op  # the agent gave no reason: the node failed
    assert present_on(client, "cpe1") == set()
    wait_until(lambda: instance(client, FW) is None, 5, "the instance to be forgotten")
    assert agent.running_ids() == set()


def test_an_agents_refusal_of_bad_input_is_recorded_as_such_not_as_a_500(
        client: httpx.Client, make_agent: MakeAgent) -> None:
    """The operation's error carries the status the agent gave (422: the NF's configuration
    was refused), not a server error."""
    agent = make_agent("cpe1")
    add_user(client)
    agent.mode, agent.fail_status = "fail", 422
    op = wait_op(client, instantiate(client))
    assert op["operation_state"] == "ROLLED_BACK", op
    assert op["error"]["status"] == 422 and agent.fail_error in op["error"]["detail"], op


def test_agent_garbage_reply_rolls_back(client: httpx.Client, make_agent: MakeAgent) -> None:
    """A reply that is not a Reply fails the operation (rolled back) instead of escaping."""
    agent = make_agent("cpe1")
    add_user(client)
    agent.mode = "garbage"
    op = wait_op(client, instantiate(client))
    assert op["operation_state"] == "ROLLED_BACK", op
    assert "invalid reply" in op["error"]["detail"] and "cpe1" in op["error"]["detail"], op
    assert op["error"]["status"] == 502, op  # the agent's answer was not one
    assert present_on(client, "cpe1") == set()
    agent.mode = "ok"
    wait_until(lambda: converged(client, agent) and agent.running_ids() == set(), 5,
               "cpe1 to hold what the database says")


def test_terminate_not_answered_then_converges(client: httpx.Client,
                                               make_agent: MakeAgent) -> None:
    agent = make_agent("cpe1")
    add_user(client)
    assert wait_op(client, instantiate(client))["operation_state"] == "COMPLETED"
    agent.mode = "silent"
    agent.kill()
    r = client.post(f"{API}/vnf_instances/{FW}/terminate")
    op = wait_op(client, r.json()["vnf_lcm_op_occs"][0], timeout=NO_ANSWER_BOUND + 10)
    # Not confirmed: FAILED, but the desired state says absent, and the node converges to
    # that when its agent is back.
    assert op["operation_state"] == "FAILED", op
    inst = instance(client, FW)
    assert inst is not None and inst["desired_state"] == "absent"
    # On its way out: it can't be updated or moved, and the request changes nothing.
    r = client.patch(f"{API}/vnf_instances/{FW}", json={"config": {"default_in": "allow"}})
    assert_problem(r, 409, FW, "terminated")
    assert instance(client, FW) == inst
    reg = agent.restart()
    assert FW not in desired_ids(reg)
    wait_until(lambda: instance(client, FW) is None, 5, "the instance to be forgotten")
    assert agent.running_ids() == set()


def test_one_operation_at_a_time(client: httpx.Client, make_agent: MakeAgent) -> None:
    agent = make_agent("cpe1")
    make_agent("cpe2")
    add_user(client)
    agent.mode = "silent"
    op_id = instantiate(client)
    for method, path, body in (
        ("POST", f"/vnf_instances/{FW}/terminate", None),
        ("PATCH", f"/vnf_instances/{FW}", {"config": {}}),
        ("POST", f"/vnf_instances/{FW}/migrate", {"node": "cpe2"}),
    ):
        r = client.request(method, API + path, json=body)
        assert_problem(r, 409, FW, "in progress", op_id)
    assert wait_op(client, op_id, timeout=NO_ANSWER_BOUND + 10)["operation_state"] == \
        "ROLLED_BACK"
    # Rolled back: the instance is on its way out; it can't be updated or moved.
    if instance(client, FW) is not None:
        r = client.patch(f"{API}/vnf_instances/{FW}", json={"config": {}})
        assert_problem(r, (404, 409), FW)


def test_instance_deleted_under_an_operation_does_not_stick(
        client: httpx.Client, make_agent: MakeAgent, live: LiveOrchestrator) -> None:
    """Whatever escapes an operation's coroutine ends it FAILED, not PROCESSING forever."""
    make_agent("cpe1")
    add_user(client)
    assert wait_op(client, instantiate(client))["operation_state"] == "COMPLETED"
    coord = live.orch.coordinator
    assert coord is not None
    real = coord.update

    async def broken(op_id: str, iid: str, config: dict[str, Any]) -> bool:
        raise RuntimeError("the database went away")

    coord.update = broken  # type: ignore[method-assign]
    try:
        r = client.patch(f"{API}/vnf_instances/{FW}", json={"config": {}})
        op = wait_op(client, r.json()["vnf_lcm_op_occs"][0])
    finally:
        coord.update = real  # type: ignore[method-assign]
    assert op["operation_state"] == "FAILED", op
    assert "went away" in op["error"]["detail"]


# -- notifications ----------------------------------------------------------------------------

def _notes(c: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    r = c.get(f"{API}/notifications", params=params)
    assert r.status_code == 200, r.text
    out: list[dict[str, Any]] = r.json()
    return out


def test_notifications_ack_delete_mute(client: httpx.Client, make_agent: MakeAgent) -> None:
    agent = make_agent("cpe1")
    add_user(client)
    assert wait_op(client, instantiate(client))["operation_state"] == "COMPLETED"
    agent.notify("port-scan", FW, src="10.0.0.9")
    (n,) = wait_until(lambda: _notes(client), 5, "the notification to be stored")
    assert (n["type"], n["nf_instance_id"], n["node"], n["acknowledged"]) == (
        "port-scan", FW, "cpe1", False)
    assert n["detail"] == {"src": "10.0.0.9"}
    nid = n["id"]

    r = client.post(f"{API}/notifications/{nid}/ack")
    assert r.status_code == 200 and r.json()["acknowledged"] is True
    assert _notes(client, acknowledged=False) == []
    assert [x["id"] for x in _notes(client, acknowledged=True)] == [nid]
    assert client.delete(f"{API}/notifications/{nid}").status_code == 204
    assert _notes(client) == []
    assert_problem(client.delete(f"{API}/notifications/{nid}"), 404, str(nid))

    # Muted: the NF's notifications are dropped; others still arrive. A notification from
    # another source, sent after, marks when the muted one would have been stored.
    assert client.put(f"{API}/vnf_instances/{FW}/mute").status_code == 204
    agent.notify("port-scan", FW, src="10.0.0.10")
    agent.notify("node-alert", None, what="marker")
    wait_until(lambda: _notes(client, type="node-alert"), 5, "the marker notification")
    assert _notes(client, nf_instance_id=FW) == []
    # Unmuted: stored again.
    assert client.delete(f"{API}/vnf_instances/{FW}/mute").status_code == 204
    agent.notify("port-scan", FW, src="10.0.0.11")
    (n,) = wait_until(lambda: _notes(client, nf_instance_id=FW), 5, "the unmuted one")
    assert n["detail"] == {"src": "10.0.0.11"}


# -- server-sent events -----------------------------------------------------------------------

def test_events_stream_op_changes(client: httpx.Client, make_agent: MakeAgent,
                                  live: LiveOrchestrator) -> None:
    make_agent("cpe1")
    add_user(client)
    events: list[tuple[str, dict[str, Any]]] = []
    subscribed = threading.Event()
    done = threading.Event()

    def read() -> None:
        with httpx.Client(base_url=live.url, timeout=httpx.Timeout(10, read=20),
                          headers=AUTH) as c, \
                c.stream("GET", f"{API}/events") as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            kind = None
            for line in r.iter_lines():
                if line.startswith(":"):
                    subscribed.set()
                elif line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: ") and kind is not None:
                    events.append((kind, json.loads(line.removeprefix("data: "))))
                    if kind == "op" and events[-1][1]["data"]["state"] == "COMPLETED":
                        break
                if done.is_set():
                    break

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert subscribed.wait(10), "no comment line from /events"
        op_id = instantiate(client)
        reader.join(timeout=15)
        assert not reader.is_alive(), "no COMPLETED op event within 15s"
    finally:
        done.set()
    ops = [(e["data"]["id"], e["data"]["state"]) for k, e in events if k == "op"]
    assert ops == [(op_id, "PROCESSING"), (op_id, "COMPLETED")], events
    assert all(e["data"]["vnf_instance_id"] == FW for k, e in events if k == "op")


# -- the orchestrator itself ------------------------------------------------------------------

def test_orchestrator_restart_ends_interrupted_ops(make_live: MakeLive, loop: LoopThread,
                                                   tmp_path: Any) -> None:
    """An operation cut short by an orchestrator stop is not left PROCESSING: the next start
    ends it, rolled back, and the node converges to the database."""
    state = tmp_path / "restart"
    first = make_live(state_dir=state, command_timeout=30.0)
    agent = FakeAgent(loop, first.nats_url, "cpe1")
    try:
        agent.start()
        with httpx.Client(base_url=first.url, timeout=15, headers=AUTH) as c:
            add_user(c)
            agent.mode = "silent"
            op_id = instantiate(c)
            wait_until(lambda: FW in agent.running_ids(), 5, "the agent to get the apply")
        agent.kill()
        first.stop()
        second = make_live(state_dir=state)
        agent.url = second.nats_url
        agent.mode = "ok"
        with httpx.Client(base_url=second.url, timeout=15, headers=AUTH) as c:
            op = c.get(f"{API}/vnf_lcm_op_occs/{op_id}").json()
            assert op["operation_state"] in ("ROLLED_BACK", "FAILED"), op
            assert "restart" in op["error"]["detail"], op
            reg = agent.start()
            assert FW not in desired_ids(reg)
            wait_until(lambda: converged(c, agent), 5, "cpe1 to hold what the database says")
            assert agent.running_ids() == set()
    finally:
        agent.kill()


def test_concurrent_instantiates(client: httpx.Client, make_agent: MakeAgent) -> None:
    """Operations on different instances of one node run side by side; none is lost."""
    n = 4
    agent = make_agent("cpe1")
    for i in range(n):
        add_user(client, f"user{i}")
    ops = [instantiate(client, owner=f"user{i}") for i in range(n)]
    states = [wait_op(client, o)["operation_state"] for o in ops]
    assert states == ["COMPLETED"] * n
    assert agent.running_ids() == {f"cpe1-user{i}-firewall" for i in range(n)}
    assert converged(client, agent)


def test_stop_ends_embedded_nats(tmp_path: Any) -> None:
    """The orchestrator's lifespan stops the nats-server it started (checked by its PID)."""
    from tests.api.harness import pid_alive, running

    with running(tmp_path / "s") as live:
        pid = live.nats_pid
        assert pid is not None and pid_alive(pid)
        assert httpx.get(f"{live.url}/api/v1/health", timeout=10).json()["ok"] is True
    assert not pid_alive(pid)
    assert not (tmp_path / "s" / "nats" / "nats-server.pid").exists()


def test_a_second_orchestrator_on_the_state_dir_is_refused_and_ends_nothing(
        live: LiveOrchestrator) -> None:
    """It would have taken the first one's nats-server for an orphan and ended it."""
    from netfate.errors import Conflict
    from netfate.orchestrator.service import Orchestrator
    from tests.api.harness import pid_alive

    second = Orchestrator(live.settings.model_copy())
    with pytest.raises(Conflict, match="already runs an orchestrator"):
        asyncio.run(second.start())
    assert live.nats_pid is not None and pid_alive(live.nats_pid)
    r = httpx.get(f"{live.url}/api/v1/health", timeout=10)
    assert r.status_code == 200 and r.json()["bus_connected"] is True, r.text


def test_a_start_that_fails_ends_what_it_started(tmp_path: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """(review, 2026-12-05) A start failing after the lock and the nats-server kept both for
    the rest of the process: the next orchestrator there was refused."""
    from netfate.orchestrator import service, state_lock
    from netfate.orchestrator.app import create_app
    from netfate.orchestrator.settings import Settings
    from tests.api.harness import free_port, pid_alive

    state = tmp_path / "state"
    app = create_app(Settings(state_dir=state, db_url=None, nats_url=None, host="127.0.0.1",
                              port=free_port(), api_token="t" * 32))
    pids: list[int] = []

    async def refused(*_a: Any, **_k: Any) -> Any:
        pids.append(app.state.orchestrator.nats.proc.pid)  # its nats-server runs by now
        raise OSError("the bus refused (test)")

    monkeypatch.setattr(service.nats, "connect", refused)

    async def lifespan() -> None:
        async with app.router.lifespan_context(app):
            pass

    with pytest.raises(OSError, match="the bus refused"):
        asyncio.run(lifespan())
    assert len(pids) == 1 and not pid_alive(pids[0])  # its nats-server was stopped
    state_lock.probe(state)  # and the state directory is free again


def test_health_says_503_while_the_bus_is_down(live: LiveOrchestrator) -> None:
    assert live.orch.nats is not None
    live.orch.nats.stop()
    wait_until(lambda: httpx.get(f"{live.url}/api/v1/health", timeout=10).status_code == 503
               or None, 10, "health to see the bus gone")
    body = httpx.get(f"{live.url}/api/v1/health", timeout=10).json()
    assert body["ok"] is False and body["bus_connected"] is False, body
    live.nats_pid = None  # stopped here, not by the orchestrator's stop


def test_a_user_cannot_associate_at_a_data_centre_node(client: httpx.Client,
                                                       make_agent: MakeAgent) -> None:
    make_agent("dc1", role="dc")
    add_user(client)
    r = client.post(f"{API}/users/user1/associate", json={"node": "dc1"})
    assert_problem(r, 422, "dc1", "data-centre")
    assert client.get(f"{API}/users/user1").json()["access_node"] is None
    assert client.get(f"{API}/vnf_lcm_op_occs").json() == []
