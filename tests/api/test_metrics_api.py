"""The orchestrator's /metrics: Prometheus text at the root path (not under /api/v1), for
loopback clients only by default; it follows what the coordinator does (operations,
placement, agent commands) and what the database holds (users, NF instances, nodes)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import MakeAgent, MakeLive
from tests.api.harness import assert_problem, wait_op, wait_until
from tests.api.test_api_faults import API, add_user


def samples(c: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = c.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(r.text) for s in fam.samples}


def test_metrics_follow_an_association(client: httpx.Client, make_agent: MakeAgent) -> None:
    make_agent("cpe1")
    add_user(client, required_nfs=["firewall"])
    r = client.post(f"{API}/users/user1/associate",
                    json={"node": "cpe1", "mac": "02:00:00:00:00:01", "ip": "10.0.0.2"})
    assert r.status_code == 202, r.text
    (op_id,) = r.json()["vnf_lcm_op_occs"]
    assert wait_op(client, op_id)["operation_state"] == "COMPLETED"

    def counted() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        s = samples(client)
        key = ("netfate_lcm_operations_total",
               frozenset({("operation", "INSTANTIATE"), ("outcome", "completed")}))
        return s if s.get(key, 0) >= 1 else {}

    s = wait_until(counted, 5, "the INSTANTIATE counted")
    assert s[("netfate_users", frozenset({("state", "active")}))] == 1
    assert s[("netfate_node_online", frozenset({("node", "cpe1"), ("role", "cpe")}))] == 1
    running = [v for (name, labels), v in s.items() if name == "netfate_nf_instances"
               and ("nf", "firewall") in labels and ("node", "cpe1") in labels]
    assert sum(running) == 1
    assert s[("netfate_placement_duration_seconds_count",
              frozenset({("event", "user_associated")}))] >= 1
    assert any(name == "netfate_agent_command_duration_seconds_count" and v >= 1
               for (name, _), v in s.items())
    assert ("netfate_loop_failures_total", frozenset()) not in s  # labelled only
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_metrics_refuse_clients_outside_the_metrics_networks(make_live: MakeLive) -> None:
    live = make_live(metrics_networks=("10.0.0.0/8",))
    with httpx.Client(base_url=live.url, timeout=10) as c:
        r = c.get("/metrics")
        assert r.status_code == 403
        assert "NETFATE_METRICS_NETWORKS" in r.json()["detail"]


def test_metrics_take_name_filters_and_refuse_other_query_parameters(
        client: httpx.Client) -> None:
    """`/metrics?nmae[]=x` served every metric, as if the filter were not misspelt, and
    `?name[]=x` every one too, the filter ignored (probe of 2026-12-06). name[] is
    prometheus_client's own filter: the samples of those names, repeatable."""
    for params, words in (({"foo": "1"}, ["'foo'", "name[]"]),
                          ({"nmae[]": "netfate_users"}, ["'nmae[]'"]),
                          ({"name[]": "netfate_users", "format": "json"}, ["'format'"]),
                          ({"name[]": ""}, ["name[] is empty"])):
        assert_problem(client.get("/metrics", params=params), 400, *words)
    r = client.get("/metrics", params=[("name[]", "netfate_users"),
                                       ("name[]", "process_open_fds")])
    assert r.status_code == 200, r.text
    names = {s.name for fam in text_string_to_metric_families(r.text) for s in fam.samples}
    assert names == {"netfate_users", "process_open_fds"}
    r = client.get("/metrics", params={"name[]": "netfate_no_such_metric"})
    assert r.status_code == 200 and r.text == ""  # none (yet): not an error
    s = samples(client)  # no filter: every metric
    assert ("netfate_users", frozenset({("state", "active")})) in s
    assert ("process_open_fds", frozenset()) in s
