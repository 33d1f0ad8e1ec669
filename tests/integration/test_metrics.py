"""Metrics on the testbed, scraped by a real Prometheus (Debian `prometheus`): after a login
and a roam, PromQL over Prometheus's HTTP API returns the handover gap and the NF counts; and
Prometheus's own parser (`promtool check metrics`) accepts what every process serves.

One testbed with its services and one Prometheus for the module; both are stopped (by the
PID started here) and removed after, even when a test fails."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from netfate.api_auth import BearerAuth
from netfate.cli.main import app as cli
from netfate.metrics import scrape
from netfate.ports import free_port as _free_port
from netfate.roaming.probes import EchoServer
from netfate.roaming.session import running_at, wait_for
from netfate.testbed import lifecycle
from netfate.testbed.move import move
from netfate.testbed.settings import TestbedSettings
from netfate.testbed.topology import load_topology

from .test_roaming import ALLOWED, INET, login

PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMETHEUS is None or PROMTOOL is None,
                                reason="Debian prometheus (prometheus, promtool) not installed")


class Prometheus:
    """A Prometheus server on loopback scraping ``config``, its TSDB in a fate- temp dir."""

    def __init__(self, config: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="fate-prometheus-"))
        (self.dir / "prometheus.yml").write_text(config)
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.log = (self.dir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [str(PROMETHEUS), f"--config.file={self.dir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address={self.url.removeprefix('http://')}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.http = httpx.Client(base_url=self.url, timeout=5)

    def ready(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return self.http.get("/-/ready").status_code == 200
        return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        r = self.http.get("/api/v1/query", params={"query": promql})
        r.raise_for_status()
        body = r.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self.http.get("/api/v1/targets").json()["data"][
            "activeTargets"]
        return active

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(testbed_up: None) -> Iterator[tuple[httpx.Client, Prometheus]]:
    topo = load_topology()
    lifecycle.down()
    api = httpx.Client(base_url=lifecycle.api_url() + "/api/v1", timeout=30,
                      auth=BearerAuth())
    prom: Prometheus | None = None
    echo: EchoServer | None = None
    try:
        lifecycle.up(topo, settings=TestbedSettings(idle_timeout=0))
        echo = EchoServer("fate-h-inet", INET, ALLOWED)  # what login() checks the path with
        out = CliRunner().invoke(cli, ["testbed", "prometheus-config", "--interval", "1"])
        assert out.exit_code == 0, out.output
        prom = Prometheus(out.output)
        wait_for(prom.ready, 30, "Prometheus ready", step=0.2)
        yield api, prom
    finally:
        if prom is not None:
            prom.stop()
        if echo is not None:
            echo.close()
        api.close()
        lifecycle.down()
        lifecycle.up(topo, services=False)


def test_prometheus_scrapes_every_process_of_the_testbed(
        stack: tuple[httpx.Client, Prometheus]) -> None:
    _, prom = stack
    expected = {addr for procs in scrape.recorded().values() for addr in procs.values()}
    assert len(expected) == 2 + len(load_topology().nodes)  # orchestrator, controller, agents

    def all_up() -> bool:
        seen = {t["labels"]["instance"]: t["health"] for t in prom.targets()}
        return set(seen) == expected and all(h == "up" for h in seen.values())

    wait_for(all_up, 30, "every target up in Prometheus", step=0.5)


def test_roam_gives_the_handover_gap_and_nf_counts_in_promql(
        stack: tuple[httpx.Client, Prometheus]) -> None:
    api, prom = stack
    topo = load_topology()
    login(api, topo, "client1", "user1")
    move("client1", "cpe2")
    wait_for(lambda: running_at(api, "user1") == {"cpe2-user1-firewall": "cpe2"}, 30,
             "user1's firewall at cpe2")
    gap = wait_for(lambda: prom.query("netfate_handover_gap_seconds_count > 0"), 20,
                   "the handover gap in Prometheus", step=0.5)
    assert gap[0]["metric"]["node"] == "cpe2"
    mean = prom.query("netfate_handover_gap_seconds_sum / netfate_handover_gap_seconds_count")
    assert 0 < float(mean[0]["value"][1]) < 30, mean
    print(f"handover gap, association to steering at cpe2: {mean[0]['value'][1]} s")

    def firewall_at_cpe2() -> list[dict[str, Any]]:
        return prom.query('sum by (node) (netfate_nf_instances{nf="firewall", '
                          'state="running", desired="present"}) > 0')

    counts = wait_for(lambda: [r for r in firewall_at_cpe2()
                               if r["metric"].get("node") == "cpe2"], 20,
                      "a running firewall at cpe2 in Prometheus", step=0.5)
    assert float(counts[0]["value"][1]) == 1
    ops = wait_for(lambda: prom.query(
        'netfate_lcm_operations_total{operation="MIGRATE", outcome="completed"} > 0'), 20,
        "a completed migration counted", step=0.5)
    assert ops
    users = prom.query('netfate_users{state="active"}')
    assert float(users[0]["value"][1]) >= 1
    # the agent's telemetry: the firewall's memory at cpe2 (its cgroup's: it may be 0, the
    # catalogue firewall being kernel state set up in-process by the fast path); the
    # controller's flow-mods
    wait_for(lambda: prom.query('netfate_nf_memory_bytes{node="cpe2", nf="firewall"} >= 0'),
             20, "the firewall's memory from cpe2's agent", step=0.5)
    assert prom.query("sum(netfate_controller_flow_mods_total) > 0")
    assert prom.query("netfate_agent_command_duration_seconds_count > 0")
    assert not prom.query('{exported_node!=""}'), "a node label renamed by the scrape"


def test_promtool_accepts_every_process_metrics(
        stack: tuple[httpx.Client, Prometheus]) -> None:
    for job, procs in scrape.recorded().items():
        for proc, addr in procs.items():
            text = httpx.get(f"http://{addr}/metrics", timeout=5).content
            assert b"netfate_loop_failures_total" in text or b"netfate_" in text, proc
            r = subprocess.run([str(PROMTOOL), "check", "metrics"], input=text,
                               capture_output=True, check=False)
            assert r.returncode == 0, (job, proc, r.stdout.decode(), r.stderr.decode())


def test_metrics_is_outside_the_api_and_answers_without_credentials(
        stack: tuple[httpx.Client, Prometheus]) -> None:
    r = httpx.get(lifecycle.api_url() + "/metrics", timeout=5)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert b"# TYPE netfate_handover_gap_seconds histogram" in r.content


def test_every_dashboard_query_evaluates(stack: tuple[httpx.Client, Prometheus]) -> None:
    """Grafana's panels (docs/grafana-netfate.json) are valid PromQL, and the case study's
    ones return data from this testbed."""
    _, prom = stack
    doc = json.loads((Path(__file__).parents[2] / "docs" / "grafana-netfate.json").read_text())
    empty = []
    for p in doc["panels"]:
        for t in p.get("targets", []):
            expr = t["expr"].replace("$__rate_interval", "1m").replace("$__range", "10m")
            if not prom.query(expr):  # raises on a PromQL error
                empty.append(p["title"])
    for title in ("Active users", "NFs running", "Nodes online", "NF instances by node",
                  "Flow-mods by node and command", "Node CPU"):
        assert title not in empty, empty
