"""An agent's metrics, served on a loopback port of its own (``--metrics-port``).

Counted as the agent works: commands from the orchestrator by op and outcome, with how long
handling took. From its telemetry (`telemetry`, called with every report it sends): the
node's resources, and each NF's CPU time and memory read from the NF's cgroup at scrape
time, the same counters the agent's resource budget adds up.

Agents run in the host's network namespace (they drive OVS and create the NFs' namespaces),
so a Prometheus on the host reaches 127.0.0.1:PORT directly.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from netfate.metrics.common import LATENCY_BUCKETS, registry, serve

REGISTRY = CollectorRegistry(auto_describe=True)

COMMANDS = Histogram(
    "netfate_agent_command_handling_seconds", "Handling a command from the orchestrator, "
    "by op (apply, status, export_state...) and outcome (ok, error)", ["op", "outcome"],
    buckets=LATENCY_BUCKETS, registry=REGISTRY)

MB = 1024 * 1024


def command(op: str, ok: bool, seconds: float) -> None:
    COMMANDS.labels(op, "ok" if ok else "error").observe(max(0.0, seconds))


class TelemetryView:
    """The last telemetry report the agent sent (its node, resources and NFs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last: Any = None  # a netfate.bus.messages.Telemetry

    def update(self, t: Any) -> None:
        with self._lock:
            self.last = t

    def get(self) -> Any:
        with self._lock:
            return self.last


VIEW = TelemetryView()


def telemetry(t: Any) -> None:
    """The agent sent telemetry report ``t`` (a Telemetry)."""
    VIEW.update(t)


class TelemetryCollector(Collector):
    """The node's resources as last reported, and per-NF CPU and memory from cgroups."""

    def __init__(self, view: TelemetryView | None = None, cpu_ns: Any = None,
                 memory_bytes: Any = None) -> None:
        from netfate.drivers import cgroups

        self.view = view or VIEW
        self.cpu_ns = cpu_ns or cgroups.cpu_ns
        self.memory_bytes = memory_bytes or cgroups.memory_bytes

    def collect(self) -> Iterator[Metric]:
        t = self.view.get()
        if t is None:
            return  # no report yet
        node, r = t.node, t.resources
        cpu_use = GaugeMetricFamily("netfate_node_cpu_utilisation_ratio", "CPU use of the "
                                    "node (of its budget, for an emulated node), 0-1",
                                    labels=["node"])
        cpu_use.add_metric([node], r.cpu_util)
        yield cpu_use
        mem = GaugeMetricFamily("netfate_node_memory_bytes", "The node's memory for NFs, by "
                                "kind (total, free)", labels=["node", "kind"])
        mem.add_metric([node, "total"], r.mem_total_mb * MB)
        mem.add_metric([node, "free"], r.mem_free_mb * MB)
        yield mem
        labels = ["node", "nf", "instance", "owner", "state"]
        count = GaugeMetricFamily("netfate_agent_nfs", "NF instances on the node as the agent "
                                  "last reported them", labels=labels)
        cpu = CounterMetricFamily("netfate_nf_cpu_seconds", "CPU time used by an NF's "
                                  "processes (its cgroup)", labels=labels[:4])
        memory = GaugeMetricFamily("netfate_nf_memory_bytes", "Memory used by an NF's "
                                   "processes (its cgroup)", labels=labels[:4])
        for nf in t.nfs:
            ids = [node, nf.nf_name, nf.instance_id, nf.owner]
            count.add_metric([*ids, nf.state], 1)
            cpu.add_metric(ids, self.cpu_ns(nf.instance_id) / 1e9)
            used = self.memory_bytes(nf.instance_id)
            if used is not None:
                memory.add_metric(ids, used)
        yield count
        yield cpu
        yield memory


def start(agent: Any, port: int) -> Any:
    """Serve the metrics of ``agent`` (the process's one Agent, which reports through
    `telemetry` and `command`) on 127.0.0.1:port; the server."""
    return serve(port, registry(REGISTRY, [TelemetryCollector()]))
