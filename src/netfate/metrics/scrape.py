"""Where a testbed's processes serve their metrics, and a Prometheus configuration that
scrapes them (`netfate testbed prometheus-config`).

Ports (TestbedSettings.metrics_port = P): the orchestrator serves /metrics on its API port;
the SDN controller on P; the agent of the k-th node of the topology (in its order) on
P + 1 + k. All on 127.0.0.1: every one of these processes runs in the host's network
namespace, so a Prometheus on the host scrapes them directly.
"""

from __future__ import annotations

from typing import Any

import yaml

from netfate.testbed.settings import TestbedSettings
from netfate.testbed.topology import Topology

HOST = "127.0.0.1"


def agent_port(topo: Topology, settings: TestbedSettings, node: str) -> int:
    """The metrics port of ``node``'s agent; 0 when metrics are off. Raises ValueError for
    a node the topology lacks."""
    if not settings.metrics_port:
        return 0
    names = [n.name for n in topo.nodes]
    if node not in names:
        raise ValueError(f"node {node!r} is not in topology {topo.name!r} ({names})")
    return settings.metrics_port + 1 + names.index(node)


def targets(topo: Topology, settings: TestbedSettings) -> dict[str, dict[str, str]]:
    """job -> instance (process name) -> host:port. Without metrics ports (0) only the
    orchestrator, which serves /metrics on its API port anyway."""
    out: dict[str, dict[str, str]] = {
        "netfate-orchestrator": {"orchestrator": f"{HOST}:{settings.api_port}"}}
    if settings.metrics_port:
        out["netfate-controller"] = {"controller": f"{HOST}:{settings.metrics_port}"}
        out["netfate-agent"] = {f"agent-{n.name}": f"{HOST}:{agent_port(topo, settings, n.name)}"
                                for n in topo.nodes}
    return out


def prometheus_config(recorded: dict[str, dict[str, str]], interval_s: float = 5.0) -> str:
    """A prometheus.yml (YAML text) scraping the ``recorded`` targets (as `targets` gives
    them) every ``interval_s`` seconds; each target's ``process`` label names the process
    (the agents' also their ``node``). Raises ValueError for a non-positive interval."""
    if interval_s <= 0:
        raise ValueError(f"scrape interval must be positive, got {interval_s}")
    jobs: list[dict[str, Any]] = []
    for job, procs in sorted(recorded.items()):
        groups = []
        for proc, addr in sorted(procs.items()):
            labels = {"process": proc}
            if proc.startswith("agent-"):
                labels["node"] = proc[len("agent-"):]
            groups.append({"targets": [addr], "labels": labels})
        job_doc: dict[str, Any] = {"job_name": job, "metrics_path": "/metrics"}
        if any("node" in g["labels"] for g in groups):
            # An agent's own `node` label (same value) is kept, not renamed exported_node.
            job_doc["honor_labels"] = True
        jobs.append({**job_doc, "static_configs": groups})
    doc = {"global": {"scrape_interval": f"{interval_s:g}s",
                      "evaluation_interval": f"{interval_s:g}s"},
           "scrape_configs": jobs}
    return "# NetFATE testbed: `netfate testbed prometheus-config > prometheus.yml`\n" + \
        yaml.safe_dump(doc, sort_keys=False)


def recorded() -> dict[str, dict[str, str]]:
    """The targets the testbed that is up recorded (computed from its topology and settings
    if it predates the record). Raises NotFound when no testbed is up."""
    from netfate.errors import NotFound
    from netfate.testbed import lifecycle

    st = lifecycle.load_state()
    if st is None:
        raise NotFound("the testbed is not up; run 'netfate testbed up'")
    if not st.get("services", True):
        raise NotFound("the testbed is up without services (--no-services): nothing to scrape")
    if st.get("metrics"):
        return dict(st["metrics"])
    return targets(Topology.model_validate(st["topology"]), lifecycle.current())
