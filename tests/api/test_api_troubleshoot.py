"""Troubleshooting as an orchestrator operation (issue 13): POST /api/v1/troubleshoot gives
202 and an occurrence; the operator-owned probes are recorded like other NF instances
(owner "operator", with their own INSTANTIATE/UPDATE/TERMINATE occurrences), deployed
through the agents and removed afterwards, also when one cannot be deployed; bad input
gets a 4xx naming what is wrong and changes nothing; a second question while one runs
gets 409. The fake agents run no probe tools, so the report says "not measured"."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.api.conftest import MakeAgent
from tests.api.harness import (
    FakeAgent,
    LiveOrchestrator,
    assert_problem,
    unchanged,
    wait_op,
    wait_until,
)

API = "/api/v1"
PROBES = {"cpe1-operator-troubleshooter", "core-operator-troubleshooter",
          "dc-operator-troubleshooter"}


@dataclass
class Net:
    client: httpx.Client
    agents: dict[str, FakeAgent]


@pytest.fixture
def net(client: httpx.Client, make_agent: MakeAgent) -> Iterator[Net]:
    """cpe1 (user1 attached), the PE core and the DC dc, each a fake agent."""
    agents = {"cpe1": make_agent("cpe1"), "core": make_agent("core", role="pe"),
              "dc": make_agent("dc", role="dc")}
    r = client.post(f"{API}/users", json={"name": "user1", "password": "secret1",
                                          "required_nfs": ["firewall"]})
    assert r.status_code == 201, r.text
    r = client.post(f"{API}/users/user1/associate",
                    json={"node": "cpe1", "mac": "02:00:00:00:00:01", "ip": "10.0.0.2"})
    assert r.status_code == 202, r.text
    assert wait_op(client, r.json()["vnf_lcm_op_occs"][0])["operation_state"] == "COMPLETED"
    yield Net(client, agents)


def _wait(c: httpx.Client, op_id: str, timeout: float = 30) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        r = c.get(f"{API}/troubleshoot/{op_id}")
        assert r.status_code == 200, r.text
        op: dict[str, Any] = r.json()
        return op if op["operation_state"] != "PROCESSING" else None
    return wait_until(done, timeout, f"troubleshooting {op_id} to end")


def _operator_running(net: Net) -> set[str]:
    return {i for a in net.agents.values() for i in a.running_ids() if "-operator-" in i}


def test_a_question_deploys_records_and_removes_the_probes(net: Net,
                                                           live: LiveOrchestrator) -> None:
    c = net.client
    t0 = time.monotonic()
    r = c.post(f"{API}/troubleshoot", json={"user": "user1", "destination": None,
                                            "timeout_s": 2, "seconds": 1})
    assert r.status_code == 202, r.text
    op = r.json()
    assert op["operation_state"] == "PROCESSING" and op["operation"] == "TROUBLESHOOT"
    assert r.headers["location"] == f"{API}/troubleshoot/{op['id']}"
    # While it runs, the probes are NF instances of the operator, like any other.
    seen = wait_until(lambda: {i["id"] for i in c.get(f"{API}/vnf_instances").json()
                               if i["owner"] == "operator"} >= PROBES or None,
                      15, "the probes to be recorded")
    assert seen
    done = _wait(c, op["id"])
    took = time.monotonic() - t0
    assert done["operation_state"] == "COMPLETED", done
    assert set(done["probes"]) == PROBES
    rep = done["report"]
    assert [p["point"] for p in rep["points"]] == ["cpe1", "core", "dc"]
    assert [p["on_path"] for p in rep["points"]] == [True, True, False]
    assert rep["verdict"]["kind"] == "unknown"  # the fake agents run no tools
    assert rep["summary"].startswith("UNKNOWN")
    # The on-path probes get copies of the user's traffic: at the CPE of their device's
    # port (by its MAC), at the PE of the links toward the CPE; the DC, off the path, none.
    asked = {n: [c.mirror for c in a.commands if c.op == "mirror"]
             for n, a in net.agents.items()}
    assert [m.station_mac for m in asked["cpe1"] if m] == ["02:00:00:00:00:01"]
    assert [m.peer_node for m in asked["core"] if m] == ["cpe1"]
    assert asked["dc"] == []
    assert "probe at cpe1 mirrors port-of-02:00:00:00:00:01" in done["steps"], done["steps"]
    assert not any("not spliced" in x for x in rep["limits"]), rep["limits"]
    # Each probe is a station of the access subnet: an address from its top, a MAC of its
    # own, and TS rules carrying its traffic while it is asked; none left afterwards.
    addrs = [p["address"] for p in rep["points"]]
    assert addrs == ["10.90.255.254/16", "10.90.255.253/16", "10.90.255.252/16"], addrs
    assert len({p["mac"] for p in rep["points"]}) == 3
    assert any("TS rules at core, cpe1, dc" in x for x in done["steps"]), done["steps"]
    assert not any("no address" in x for x in rep["limits"]), rep["limits"]
    for node in ("cpe1", "core", "dc"):
        rules = c.get(f"{API}/nodes/{node}/ts_rules").json()
        assert not [r for r in rules if r["rule_id"].startswith("troubleshoot:")], rules
    assert rep["nfs"] and rep["nfs"][0]["nf"] == "firewall"
    assert rep["left_behind"] == [] and done["left_behind"] == []
    assert took < 15, took
    # Each probe went through the lifecycle: INSTANTIATE, UPDATEs (its requests), TERMINATE.
    occs = [c.get(f"{API}/vnf_lcm_op_occs/{o}").json() for o in done["vnf_lcm_op_occs"]]
    by = {(o["vnf_instance_id"], o["operation"]) for o in occs}
    for iid in PROBES:
        assert {(iid, "INSTANTIATE"), (iid, "UPDATE"), (iid, "TERMINATE")} <= by
    assert all(o["operation_state"] == "COMPLETED" for o in occs), occs
    # Afterwards: no probe on any node, none wanted; the user's own NF untouched.
    assert not _operator_running(net)
    left = [i for i in c.get(f"{API}/vnf_instances").json()
            if i["owner"] == "operator" and i["desired_state"] == "present"]
    assert left == []
    assert "cpe1-user1-firewall" in net.agents["cpe1"].running_ids()
    # The operator's owner row is no user: not listed, not to be read, changed, deleted or
    # logged in.
    assert "operator" not in {u["name"] for u in c.get(f"{API}/users").json()}
    assert_problem(c.get(f"{API}/users/operator"), 404, "operator")
    assert_problem(c.patch(f"{API}/users/operator", json={"required_nfs": []}), 404)
    assert_problem(c.delete(f"{API}/users/operator"), 404)
    assert_problem(c.post(f"{API}/users/operator/associate", json={"node": "cpe1"}), 404)
    assert c.get(f"{API}/troubleshoot").json()[0]["id"] == op["id"]


def _failed_question(net: Net, node: str, mode: str) -> dict[str, Any]:
    """Ask about user1 with `node`'s agent in `mode`: the finished occurrence, FAILED and
    naming that node's probe."""
    net.agents[node].mode = mode
    r = net.client.post(f"{API}/troubleshoot", json={"user": "user1", "timeout_s": 2})
    assert r.status_code == 202, r.text
    done: dict[str, Any] = _wait(net.client, r.json()["id"])
    assert done["operation_state"] == "FAILED", done
    assert f"{node}-operator-troubleshooter" in done["error"]["detail"]
    return done


def test_a_probe_that_cannot_be_deployed_fails_the_question_and_the_others_go(
        net: Net) -> None:
    c = net.client
    done = _failed_question(net, "dc", "fail")
    assert done["report"] is None and done["left_behind"] == []
    assert not _operator_running(net)
    left = [i["id"] for i in c.get(f"{API}/vnf_instances").json()
            if i["owner"] == "operator" and i["desired_state"] == "present"]
    assert left == []


def test_a_silent_agent_fails_the_question_and_its_probe_goes_when_it_answers(
        net: Net) -> None:
    """The PE's agent creates its probe but never answers: the question fails, the probe
    on cpe1 is removed, the PE's is wanted absent (listed as left behind, not confirmed)
    and goes once its agent answers again; no lifecycle occurrence stays PROCESSING."""
    c = net.client
    done = _failed_question(net, "core", "silent")
    assert "cpe1-operator-troubleshooter" not in net.agents["cpe1"].running_ids()
    assert [x.split(":")[0] for x in done["left_behind"]] == ["core-operator-troubleshooter"]
    wanted = [i["id"] for i in c.get(f"{API}/vnf_instances").json()
              if i["owner"] == "operator" and i["desired_state"] == "present"]
    assert wanted == []
    occs = [c.get(f"{API}/vnf_lcm_op_occs/{o}").json() for o in done["vnf_lcm_op_occs"]]
    assert all(o["operation_state"] != "PROCESSING" for o in occs), occs
    net.agents["core"].mode = "ok"
    wait_until(lambda: not _operator_running(net) or None, 15,
               "the PE's probe to go once its agent answers")


def test_a_users_complaint_about_one_destination(net: Net) -> None:
    """User and destination together: "user1 cannot reach 10.255.0.1:2323". The captures
    look for the user's traffic to that destination and port; the pings go to it."""
    r = net.client.post(f"{API}/troubleshoot", json={
        "user": "user1", "destination": "10.255.0.1", "port": 2323, "timeout_s": 2,
        "seconds": 1})
    assert r.status_code == 202, r.text
    done = _wait(net.client, r.json()["id"])
    assert done["operation_state"] == "COMPLETED", done
    q = done["report"]["question"]
    assert (q["user"], q["dest"], q["port"], q["user_ip"]) == \
        ("user1", "10.255.0.1", 2323, "10.0.0.2")
    asked = [c.desired for c in net.agents["cpe1"].commands if c.op == "apply" and c.desired]
    filters = {i.config["request"]["filter"] for d in asked for i in d.instances
               if i.config.get("request", {}).get("tool") == "capture"}
    assert filters == {"src host 10.0.0.2 and dst host 10.255.0.1 and tcp dst port 2323"}


def test_a_second_question_while_one_runs_is_refused(net: Net) -> None:
    c = net.client
    r = c.post(f"{API}/troubleshoot", json={"user": "user1", "timeout_s": 3})
    assert r.status_code == 202, r.text
    again = c.post(f"{API}/troubleshoot", json={"user": "user1"})
    assert_problem(again, 409, "in progress", r.json()["id"])
    _wait(c, r.json()["id"])
    assert not _operator_running(net)


def test_no_free_probe_addresses_is_a_conflict_that_changes_nothing(
        net: Net, live: LiveOrchestrator) -> None:
    """Three probes need three addresses: a probe subnet with one free host refuses the
    question up front (409, naming the subnet), before any probe or record exists."""
    live.orch.settings.probe_subnet = "10.90.0.0/30"  # .1 the gateway, .2 the only one free
    live.orch.settings.probe_gateway = "10.90.0.1"
    with unchanged(net.client):
        assert_problem(net.client.post(f"{API}/troubleshoot", json={"user": "user1"}), 409,
                       "no 3 free addresses", "10.90.0.0/30", "NETFATE_PROBE_SUBNET")
    assert net.client.get(f"{API}/troubleshoot").json() == []
    assert not _operator_running(net)


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"user": "nobody"}, 422, ("user", "nobody", "does not exist")),
    ({"user": "operator"}, 422, ("operator",)),
    ({}, 422, ("a user, a destination, or both",)),
    ({"user": None, "destination": None}, 422, ("a user, a destination, or both",)),
    ({"user": "user1", "destination": "10.0.0.\uff19"}, 422, ("destination",)),
    ({"destination": "not-an-ip"}, 422, ("destination", "not-an-ip")),
    ({"destination": "224.0.0.1"}, 422, ("unicast",)),
    ({"user": "user1", "port": 70000}, 422, ("port",)),
    ({"user": "user1", "seconds": 0}, 422, ("seconds",)),
    ({"user": "user1", "timeout_s": 1000}, 422, ("timeout_s",)),
    ({"user": "user1", "bogus": 1}, 422, ("bogus",)),
    ({"user": "u" * 65}, 422, ("user",)),
    # lax pydantic read `true` as 1 and "8_0" as 80
    ({"user": "user1\n"}, 422, ("user", "name")),
    ({"user": "user1\x00"}, 422, ("user", "name")),
    ({"destination": "0.1.2.3"}, 422, ("unicast",)),
    ({"destination": "10.0.0.\uff19"}, 422, ("destination",)),
    ({"user": "user1", "port": True}, 422, ("port",)),
    ({"user": "user1", "port": "8_0"}, 422, ("port",)),
    ({"user": "user1", "seconds": True}, 422, ("seconds",)),
    ({"user": "user1", "packets": "10"}, 422, ("packets",)),
    ({"user": "user1", "timeout_s": False}, 422, ("timeout_s",)),
])
def test_bad_questions_change_nothing(net: Net, body: dict[str, Any], status: int,
                                      words: tuple[str, ...]) -> None:
    with unchanged(net.client):
        assert_problem(net.client.post(f"{API}/troubleshoot", json=body), status, *words)
    assert net.client.get(f"{API}/troubleshoot").json() == []


def test_malformed_and_oversized_bodies(net: Net) -> None:
    c = net.client
    with unchanged(c):
        assert_problem(c.post(f"{API}/troubleshoot", content=b"{bad",
                              headers={"content-type": "application/json"}), 400)
        big = {"user": "user1", "pad": "x" * 2_000_000}
        assert_problem(c.post(f"{API}/troubleshoot", json=big), 413)
        assert_problem(c.get(f"{API}/troubleshoot/{'0' * 8}-0000-0000-0000-{'0' * 12}"), 404,
                       "troubleshooting operation")


def test_the_cli_asks_through_the_endpoint(net: Net, cli_at_live: None) -> None:
    """`netfate troubleshoot USER` posts the question and prints the report's summary."""
    from netfate.cli.main import app

    out = CliRunner().invoke(app, ["troubleshoot", "user1", "--seconds", "1", "--timeout", "2",
                                  "--json"])
    assert out.exit_code == 0, out.output
    rep = json.loads(out.output)
    assert [p["point"] for p in rep["points"]] == ["cpe1", "core", "dc"]
    assert rep["left_behind"] == []
    bad = CliRunner().invoke(app, ["troubleshoot", "nobody"])
    assert bad.exit_code == 1 and "does not exist" in bad.output, bad.output
    assert not _operator_running(net)
