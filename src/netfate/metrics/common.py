"""What every process exports, and the loopback listener of those without a web server.

`CountersCollector` turns `netfate.counters` (the long-running loops' failures, refused
registrations...) into Prometheus counters at scrape time, so the code that counts does not
change. `registry()` is a process's registry: its own metrics, the counters, and the
process's CPU, memory and file descriptors (prometheus_client's ProcessCollector).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    ProcessCollector,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from netfate import counters

log = logging.getLogger("netfate.metrics")

# No `_created` gauge beside every counter and histogram: Prometheus does not need them
# (it detects resets itself), and they double what every dashboard query wades through.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Latency buckets, seconds: from a sub-millisecond planning step to a slow NF start or a
# timed-out agent command (the default buckets stop at 10 s and start at 5 ms).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0)


def _family_name(name: str) -> str:
    """prometheus_client appends ``_total`` to a counter's samples itself."""
    return name[: -len("_total")] if name.endswith("_total") else name


class CountersCollector(Collector):
    """The samples of a `netfate.counters.Counters` as Prometheus counters, one family per
    name with the union of its label names (a label a sample lacks is exported empty). The
    names in `counters.HELP` are exported even before they first count, so dashboards and
    alerts find them."""

    def __init__(self, source: counters.Counters | None = None) -> None:
        self.source = source if source is not None else counters.REGISTRY

    def collect(self) -> Iterator[Metric]:
        by_name: dict[str, list[counters.Sample]] = {n: [] for n in counters.HELP}
        for s in self.source.snapshot():
            by_name.setdefault(s.name, []).append(s)
        for name, samples in sorted(by_name.items()):
            labels = sorted({k for s in samples for k in s.labels})
            fam = CounterMetricFamily(_family_name(name),
                                      counters.HELP.get(name, f"NetFATE counter {name}"),
                                      labels=labels)
            for s in samples:
                fam.add_metric([s.labels.get(k, "") for k in labels], float(s.value))
            yield fam


class Forward(Collector):
    """Every metric of another registry (a process-wide one inside a per-app registry)."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return self.source.collect()


def registry(own: CollectorRegistry | None = None,
             extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """A registry with ``own`` metrics (forwarded), the counters, this process's resources
    and ``extra`` collectors."""
    reg = CollectorRegistry(auto_describe=False)
    if own is not None:
        reg.register(Forward(own))
    reg.register(CountersCollector())
    ProcessCollector(namespace="", registry=reg)
    for c in extra:
        reg.register(c)
    return reg


def serve(port: int, reg: CollectorRegistry, host: str = "127.0.0.1") -> Any:
    """Serve ``reg`` at http://host:port/metrics from a daemon thread (loopback by
    default: Prometheus scrapes it from the same host). Returns the server, or None when
    the port cannot be had (logged as an error: a process that runs the network must not
    stop for want of its metrics)."""
    try:
        server, thread = start_http_server(port, addr=host, registry=reg)
    except OSError as exc:
        log.error("no metrics: cannot listen on %s:%d: %s", host, port, exc)
        return None
    assert isinstance(thread, threading.Thread)
    log.info("metrics at http://%s:%d/metrics", host, port)
    return server
