"""The metrics modules: collectors export what the process knows under the documented
names, the counters of `netfate.counters` included, and Prometheus's own parser (promtool)
accepts every process's exposition."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

import netfate.metrics as metrics_pkg
from netfate import counters
from netfate.bus.messages import NFActual, Resources, SwitchSynced, Telemetry, UserIdleReport
from netfate.db import Database, repo, sqlite_url
from netfate.metrics import agent, common, controller, orchestrator, scrape
from netfate.testbed.settings import TestbedSettings
from netfate.testbed.topology import load_topology

from .test_snapshot_scope import _populate


def value(reg: CollectorRegistry, name: str, **labels: str) -> float:
    return reg.get_sample_value(name, labels) or 0.0


def one(collector: object) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)  # type: ignore[arg-type]
    return reg


def test_counters_collector_exports_every_sample_with_the_union_of_labels() -> None:
    c = counters.Counters()
    c.inc(counters.LOOP_FAILURES, loop="reconcile")
    c.inc(counters.LOOP_FAILURES, 2, loop="telemetry")
    c.inc("netfate_things_total", kind="a")
    c.inc("netfate_things_total", node="n1")
    reg = one(common.CountersCollector(c))
    assert value(reg, "netfate_loop_failures_total", loop="telemetry") == 2
    assert value(reg, "netfate_loop_failures_total", loop="reconcile") == 1
    assert value(reg, "netfate_things_total", kind="a", node="") == 1
    assert value(reg, "netfate_things_total", kind="", node="n1") == 1
    text = generate_latest(reg).decode()
    # known names are there before they count, with their help text
    assert "# TYPE netfate_registrations_refused_total counter" in text
    assert counters.HELP[counters.REGISTRATIONS_REFUSED] in text


def test_process_registry_includes_the_global_counters_and_process_metrics() -> None:
    counters.REGISTRY.inc(counters.LOOP_FAILURES, loop="unit-test")
    reg = common.registry(controller.REGISTRY)
    assert value(reg, "netfate_loop_failures_total", loop="unit-test") >= 1
    assert value(reg, "process_cpu_seconds_total") > 0
    assert "_created" not in generate_latest(reg).decode()


def test_lcm_operations_are_counted_by_outcome_with_their_duration() -> None:
    reg = orchestrator.REGISTRY
    before = value(reg, "netfate_lcm_operations_total", operation="MIGRATE",
                   outcome="completed")
    n0 = value(reg, "netfate_lcm_operation_duration_seconds_count", operation="MIGRATE",
               outcome="completed")
    t = orchestrator.OpTracker()
    t.event({"event": "op", "ts": 100.0, "data": {"id": "a", "operation": "MIGRATE",
                                                  "state": "PROCESSING"}})
    t.event({"event": "op", "ts": 100.25, "data": {"id": "a", "operation": "MIGRATE",
                                                   "state": "COMPLETED"}})
    t.event({"event": "op", "ts": 101.0, "data": {"id": "b", "operation": "RELEASE",
                                                  "state": "ROLLING_BACK"}})  # not an end
    t.event({"event": "plan", "ts": 1.0, "data": {"intents": [{"kind": "migrate"}]}})
    assert value(reg, "netfate_lcm_operations_total", operation="MIGRATE",
                 outcome="completed") == before + 1
    assert value(reg, "netfate_lcm_operation_duration_seconds_count", operation="MIGRATE",
                 outcome="completed") == n0 + 1
    assert t.started == {}
    assert value(reg, "netfate_plan_intents_total", intent="migrate") >= 1


def test_op_tracker_forgets_the_oldest_beyond_its_limit() -> None:
    t = orchestrator.OpTracker(limit=2)
    for i in range(5):
        t.event({"event": "op", "ts": float(i), "data": {"id": str(i), "operation": "X",
                                                         "state": "PROCESSING"}})
    assert list(t.started) == ["3", "4"]


def test_handover_gap_is_association_to_anchor_confirmed() -> None:
    reg = orchestrator.REGISTRY
    n0 = value(reg, "netfate_handover_gap_seconds_count", node="cpeX")
    s0 = value(reg, "netfate_handover_gap_seconds_sum", node="cpeX")
    a0 = value(reg, "netfate_handovers_total", result="accepted")
    orchestrator.handover({"ok": True, "node": "cpeX", "radius_ms": 12.0,
                           "associated_ts": 1000.0, "served_ts": 1000.5})
    orchestrator.handover({"ok": True, "node": "cpeX", "radius_ms": 12.0,
                           "associated_ts": 1000.0})  # associating failed: no gap
    orchestrator.handover({"ok": False, "node": "cpeX", "error": "timeout"})
    assert value(reg, "netfate_handover_gap_seconds_count", node="cpeX") == n0 + 1
    assert value(reg, "netfate_handover_gap_seconds_sum", node="cpeX") == \
        pytest.approx(s0 + 0.5)
    assert value(reg, "netfate_handovers_total", result="accepted") == a0 + 2
    assert value(reg, "netfate_handovers_total", result="error") >= 1


@pytest.mark.parametrize(("phase", "status", "result"), [
    ("authorize", 200, "continue"), ("authenticate", 200, "accept"),
    ("authenticate", 401, "reject"), ("authorize", 422, "invalid")])
def test_radius_requests_by_result(phase: str, status: int, result: str) -> None:
    reg = orchestrator.REGISTRY
    before = value(reg, "netfate_radius_requests_total", phase=phase, result=result)
    orchestrator.radius_request(phase, status)
    assert value(reg, "netfate_radius_requests_total", phase=phase, result=result) == before + 1


@pytest.fixture
def db(tmp_path) -> Iterator[Database]:
    d = Database.create(sqlite_url(tmp_path))
    yield d
    d.dispose()


def test_state_collector_counts_users_nfs_sessions_and_nodes(db: Database) -> None:
    with db.session() as s:
        _populate(s, random.Random(3))
    with db.session() as s:
        insts = repo.list_instances(s)
        users = [u.name for u in repo.list_users(s)]
        active = {u for u in users if repo.active_session(s, u) is not None}
        nodes = {n.name: n.online for n in repo.list_nodes(s)}
    orch = SimpleNamespace(db=db, switches=None)
    reg = one(orchestrator.StateCollector(orch))  # type: ignore[arg-type]
    total = sum(v.value for m in reg.collect() if m.name == "netfate_nf_instances"
                for v in m.samples)
    assert total == len(insts) > 0
    i = insts[0]
    same = sum(1 for x in insts if (x.node_name, x.nf_name, x.flavour, x.actual_state,
                                    x.desired_state) == (i.node_name, i.nf_name, i.flavour,
                                                         i.actual_state, i.desired_state))
    assert value(reg, "netfate_nf_instances", node=i.node_name, nf=i.nf_name,
                 flavour=i.flavour, state=i.actual_state.value,
                 desired=i.desired_state.value) == same
    assert value(reg, "netfate_users", state="active") == len(active)
    assert value(reg, "netfate_users", state="inactive") == len(users) - len(active)
    assert sum(v.value for m in reg.collect() if m.name == "netfate_sessions_active"
               for v in m.samples) == len(active)
    for name, online in nodes.items():
        role = next(m for m in reg.collect() if m.name == "netfate_node_online")
        assert any(v.labels["node"] == name and v.value == float(online) for v in role.samples)


def test_state_collector_reports_switch_generation_lag() -> None:
    summary = [{"node": "cpe1", "generation": 10, "synced_generation": 8, "in_sync": False},
               {"node": "cpe2", "generation": 5, "synced_generation": 5, "in_sync": True},
               {"node": "pe", "generation": 3, "synced_generation": None, "in_sync": False},
               {"node": "dc", "generation": None, "synced_generation": None,
                "in_sync": False}]
    orch = SimpleNamespace(db=SimpleNamespace(call=lambda fn: {
        "nfs": [], "users": [], "sessions": [], "nodes": []}),
        switches=SimpleNamespace(summary=lambda: summary))
    reg = one(orchestrator.StateCollector(orch))  # type: ignore[arg-type]
    assert value(reg, "netfate_switch_generation_lag", node="cpe1") == 2
    assert value(reg, "netfate_switch_generation_lag", node="cpe2") == 0
    assert reg.get_sample_value("netfate_switch_generation_lag", {"node": "pe"}) is None
    assert value(reg, "netfate_switch_in_sync", node="cpe2") == 1
    assert value(reg, "netfate_switch_in_sync", node="pe") == 0


def test_controller_counts_syncs_and_reports_generation_lag() -> None:
    reg = controller.REGISTRY
    before = value(reg, "netfate_controller_syncs_total", node="u1", result="changed")
    controller.sync_started("u1")
    controller.flow_mods("u1", "add", 4)
    controller.flow_mods("u1", "delete", 0)
    controller.barrier("u1")
    controller.published(SwitchSynced(node="u1", generation=7, added=4, deleted=0,
                                      unchanged=2, ts=0.0))
    controller.published(UserIdleReport(node="u1", user="alice", mac="02:00:00:00:00:01",
                                        ts=0.0))
    assert value(reg, "netfate_controller_syncs_total", node="u1", result="changed") == \
        before + 1
    assert value(reg, "netfate_controller_flow_mods_total", node="u1", command="add") >= 4
    assert reg.get_sample_value("netfate_controller_flow_mods_total",
                                {"node": "u1", "command": "delete"}) is None
    assert value(reg, "netfate_controller_sync_duration_seconds_count", node="u1") >= 1
    assert value(reg, "netfate_controller_idle_reports_total", node="u1") >= 1
    app = SimpleNamespace(_connected=("u1",), desired={
        "u1": SimpleNamespace(generation=9), "u2": SimpleNamespace(generation=1)})
    view = one(controller.AppCollector(app))
    assert value(view, "netfate_controller_switches_connected") == 1
    assert value(view, "netfate_controller_switch_generation_lag", node="u1") == 2
    assert value(view, "netfate_controller_switch_generation", node="u1", kind="synced") == 7
    assert value(view, "netfate_controller_switch_connected", node="u2") == 0


def test_agent_exports_node_resources_and_per_nf_cpu_and_memory() -> None:
    view = agent.TelemetryView()
    collector = agent.TelemetryCollector(
        view, cpu_ns=lambda iid: 2_500_000_000 if iid == "i1" else 0,
        memory_bytes=lambda iid: 3 * 1024 * 1024 if iid == "i1" else None)
    reg = one(collector)
    assert list(reg.collect()) == []  # nothing before the first report
    view.update(Telemetry(
        node="cpe1", ts=0.0, resources=Resources(mem_total_mb=256, mem_free_mb=200,
                                                 cpu_util=0.25, nf_count=2),
        nfs=[NFActual(instance_id="i1", nf_name="firewall", owner="user1", state="running",
                      bundle_sha256="x"),
             NFActual(instance_id="i2", nf_name="firewall", owner="user2", state="pending",
                      bundle_sha256="x")]))
    ids = {"node": "cpe1", "nf": "firewall", "instance": "i1", "owner": "user1"}
    assert value(reg, "netfate_nf_cpu_seconds_total", **ids) == 2.5
    assert value(reg, "netfate_nf_memory_bytes", **ids) == 3 * 1024 * 1024
    assert reg.get_sample_value("netfate_nf_memory_bytes", {**ids, "instance": "i2",
                                                             "owner": "user2"}) is None
    assert value(reg, "netfate_agent_nfs", **ids, state="running") == 1
    assert value(reg, "netfate_node_cpu_utilisation_ratio", node="cpe1") == 0.25
    assert value(reg, "netfate_node_memory_bytes", node="cpe1", kind="free") == 200 * 2**20
    agent.command("apply", True, 0.01)
    assert value(agent.REGISTRY, "netfate_agent_command_handling_seconds_count", op="apply",
                 outcome="ok") >= 1


def test_scrape_targets_and_prometheus_config() -> None:
    topo = load_topology(None)
    t = TestbedSettings(api_port=8300, metrics_port=9600)
    tg = scrape.targets(topo, t)
    assert tg["netfate-orchestrator"] == {"orchestrator": "127.0.0.1:8300"}
    assert tg["netfate-controller"] == {"controller": "127.0.0.1:9600"}
    ports = sorted(int(a.rsplit(":", 1)[1]) for a in tg["netfate-agent"].values())
    assert ports == list(range(9601, 9601 + len(topo.nodes)))
    doc = yaml.safe_load(scrape.prometheus_config(tg, 2))
    assert doc["global"]["scrape_interval"] == "2s"
    agents = next(j for j in doc["scrape_configs"] if j["job_name"] == "netfate-agent")
    assert agents["honor_labels"] is True
    first = topo.nodes[0].name
    assert {"targets": ["127.0.0.1:9601"], "labels": {"process": f"agent-{first}",
                                                        "node": first}} \
        in agents["static_configs"]
    off = scrape.targets(topo, TestbedSettings(metrics_port=0))
    assert list(off) == ["netfate-orchestrator"]
    with pytest.raises(ValueError, match="positive"):
        scrape.prometheus_config(tg, 0)
    with pytest.raises(ValueError, match="not in topology"):
        scrape.agent_port(topo, t, "nowhere")


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian prometheus) not installed")
@pytest.mark.parametrize("process", ["orchestrator", "controller", "agent"])
def test_promtool_accepts_each_exposition(process: str, tmp_path) -> None:
    own = {"orchestrator": orchestrator.REGISTRY, "controller": controller.REGISTRY,
           "agent": agent.REGISTRY}[process]
    text = generate_latest(common.registry(own))
    r = subprocess.run([str(PROMTOOL), "check", "metrics"], input=text,
                       capture_output=True, check=False)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()


DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana-netfate.json"


def exported_names() -> set[str]:
    """Every metric name the metrics modules and netfate.counters define, as Prometheus
    sees them (counters with _total; histograms with _bucket, _sum, _count)."""
    src = Path(metrics_pkg.__file__).parent
    names = set(counters.HELP)
    for f in src.glob("*.py"):
        names |= set(re.findall(r'"(netfate_[a-z_]+)"', f.read_text()))
    out = set()
    for n in names:
        out |= {n, n + "_total", n + "_bucket", n + "_sum", n + "_count"}
    return out


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]


def test_the_grafana_dashboard_uses_only_exported_metric_names() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] and doc["title"] and doc["panels"]
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    exprs = dashboard_exprs()
    used = {n for e in exprs for n in re.findall(r"\b(netfate_[a-z_]+)", e)}
    assert used - exported_names() == set()
    for must in ("netfate_handover_gap_seconds_bucket", "netfate_nf_instances",
                 "netfate_lcm_operations_total", "netfate_loop_failures_total"):
        assert must in used


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian prometheus) not installed")
def test_promtool_accepts_the_prometheus_config(tmp_path) -> None:
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(scrape.prometheus_config(
        scrape.targets(load_topology(None), TestbedSettings()), 5))
    r = subprocess.run([str(PROMTOOL), "check", "config", str(cfg)], capture_output=True,
                       check=False)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()


def test_serve_answers_on_loopback_and_a_taken_port_is_logged_not_fatal(caplog) -> None:
    import httpx

    reg = common.registry(agent.REGISTRY)
    server = common.serve(0, reg)
    assert server is not None
    try:
        port = server.server_address[1]
        r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert r.status_code == 200 and b"netfate_loop_failures_total" in r.content
        assert common.serve(port, reg) is None
        assert "cannot listen" in caplog.text
    finally:
        server.shutdown()
        server.server_close()


def test_the_listener_filters_by_name_and_refuses_other_queries_and_hostile_hosts() -> None:
    """The controller's and agents' /metrics: `?name[]=x` served nothing at all (prometheus
    _client filters by what collectors describe, and these describe nothing), and an unknown
    parameter or a hostile Host was served as if absent (probe of 2026-12-06)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from tests.local_http import exchange

    server = common.serve(0, common.registry(agent.REGISTRY))
    assert server is not None
    try:
        port = server.server_address[1]
        url = f"http://127.0.0.1:{port}/metrics"
        r = httpx.get(url, params=[("name[]", "process_open_fds"),
                                   ("name[]", "process_max_fds"),
                                   ("name[]", "netfate_no_such_metric")], timeout=5)
        assert r.status_code == 200, r.text
        fams = list(text_string_to_metric_families(r.text))
        want = {"process_open_fds", "process_max_fds"}
        assert {s.name for f in fams for s in f.samples} == want
        assert {f.name for f in fams} == want  # the other families are left out
        r = httpx.get(url, params={"name[]": "process_open_fds"}, timeout=5,
                      headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert r.headers["content-type"].startswith("application/openmetrics-text")
        assert "process_open_fds" in r.text  # the format is still prometheus_client's
        for params, words in (({"foo": "1"}, ["'foo'", "name[]"]),
                              ({"name[]": ""}, ["name[] is empty"])):
            r = httpx.get(url, params=params, timeout=5)
            assert r.status_code == 400 and r.headers["content-type"].startswith(
                "text/plain"), r.text
            assert all(w in r.text for w in words), r.text
        own = f"127.0.0.1:{port}".encode()
        for head, said in (
                (b"GET /metrics HTTP/1.1\r\n", b"no Host header"),
                (b"GET /metrics HTTP/1.1\r\nHost: a b\r\n", b"'a b'"),
                (b"GET /metrics HTTP/1.1\r\nHost: a\r\nHost: " + own + b"\r\n", b"2 Host"),
                (b"GET http://evil.example/metrics HTTP/1.1\r\nHost: " + own + b"\r\n",
                 b"'evil.example'")):
            status, rest = exchange(port, head + b"\r\n")
            assert status == 400 and said in rest, (head, rest)
        status, rest = exchange(port, b"GET http://" + own + b"/metrics HTTP/1.1\r\nHost: " +
                                own + b"\r\n\r\n")
        assert status == 200 and b"process_open_fds" in rest, rest[:300]
    finally:
        server.shutdown()
        server.server_close()
