"""The SDN controller's metrics, served on a loopback port of its own (``--metrics-port``).

Counted as the controller works (`flow_mods`, `barrier`, `flow_mod_error`, and `published`
for what it reports on the bus): flow-mods sent by command, barriers, errors the switches
answered, syncs by result with their duration (from the flow-stats request to the last
barrier's reply), idle reports. Read at scrape time (`AppCollector`): connected switches,
each switch's desired and confirmed generation and the lag between them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from netfate.metrics.common import LATENCY_BUCKETS, registry, serve

REGISTRY = CollectorRegistry(auto_describe=True)

FLOW_MODS = Counter("netfate_controller_flow_mods_total", "OpenFlow flow-mods sent, by node "
                    "and command (add, delete)", ["node", "command"], registry=REGISTRY)
BARRIERS = Counter("netfate_controller_barriers_total", "OpenFlow barrier requests sent, by "
                   "node", ["node"], registry=REGISTRY)
ERRORS = Counter("netfate_controller_flow_mod_errors_total", "Flow-mods a switch refused "
                 "(OpenFlow error messages), by node", ["node"], registry=REGISTRY)
SYNCS = Counter("netfate_controller_syncs_total", "Syncs of a switch to its desired state "
                "reported, by node and result (changed, unchanged, error)",
                ["node", "result"], registry=REGISTRY)
SYNC_DURATION = Histogram(
    "netfate_controller_sync_duration_seconds", "From the start of a switch's sync (its "
    "flows read, or its known table diffed) to the barrier that confirms its changes",
    ["node"], buckets=LATENCY_BUCKETS, registry=REGISTRY)
FLOW_READS = Counter("netfate_controller_flow_reads_total", "Reads of a switch's whole "
                     "flow table (a sync that could not diff against the table it knows)",
                     ["node"], registry=REGISTRY)
IDLE_REPORTS = Counter("netfate_controller_idle_reports_total", "Users reported idle (their "
                       "idle flow expired), by node", ["node"], registry=REGISTRY)

_lock = threading.Lock()
_synced: dict[str, int] = {}      # node -> generation last reported synced
_started: dict[str, float] = {}   # node -> when its current sync started


def sync_started(node: str) -> None:
    with _lock:
        _started[node] = time.monotonic()


def flow_read(node: str) -> None:
    FLOW_READS.labels(node).inc()


def flow_mods(node: str, command: str, n: int) -> None:
    if n:
        FLOW_MODS.labels(node, command).inc(n)


def barrier(node: str) -> None:
    BARRIERS.labels(node).inc()


def flow_mod_error(node: str) -> None:
    ERRORS.labels(node).inc()


def published(msg: Any) -> None:
    """Whatever the controller publishes on the bus: a SwitchSynced ends a sync, a
    UserIdleReport is an idle user."""
    from netfate.bus.messages import SwitchSynced, UserIdleReport

    if isinstance(msg, SwitchSynced):
        result = "error" if msg.errors else "changed" if msg.added or msg.deleted \
            else "unchanged"
        SYNCS.labels(msg.node, result).inc()
        with _lock:
            _synced[msg.node] = max(msg.generation, _synced.get(msg.node, 0)) \
                if not msg.errors else _synced.get(msg.node, 0)
            t0 = _started.pop(msg.node, None)
        if t0 is not None:
            SYNC_DURATION.labels(msg.node).observe(time.monotonic() - t0)
    elif isinstance(msg, UserIdleReport):
        IDLE_REPORTS.labels(msg.node).inc()


class AppCollector(Collector):
    """The controller app's view at scrape time (read from the metrics thread: copies)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        connected = list(getattr(self.app, "_connected", ()))
        desired = dict(getattr(self.app, "desired", {}))
        with _lock:
            synced = dict(_synced)
        yield GaugeMetricFamily("netfate_controller_switches_connected", "Switches connected "
                                "over OpenFlow whose node is known", value=len(connected))
        gen = GaugeMetricFamily("netfate_controller_switch_generation", "The generation of "
                                "each switch's desired state (kind=desired) and the last one "
                                "confirmed (kind=synced)", labels=["node", "kind"])
        lag = GaugeMetricFamily("netfate_controller_switch_generation_lag", "Generations of "
                                "the desired state not yet confirmed on the switch",
                                labels=["node"])
        up = GaugeMetricFamily("netfate_controller_switch_connected", "1 if the node's "
                               "switch is connected", labels=["node"])
        for node, state in sorted(desired.items()):
            g = int(getattr(state, "generation", 0))
            gen.add_metric([node, "desired"], g)
            up.add_metric([node], 1.0 if node in connected else 0.0)
            if node in synced:
                gen.add_metric([node, "synced"], synced[node])
                lag.add_metric([node], max(0, g - synced[node]))
        yield gen
        yield lag
        yield up


def start(app: Any, port: int) -> Any:
    """Serve the controller's metrics on 127.0.0.1:port; the server."""
    return serve(port, registry(REGISTRY, [AppCollector(app)]))
