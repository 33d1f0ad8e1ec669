"""What every process exports, and the loopback listener of those without a web server.

`CountersCollector` turns `netfate.counters` (the long-running loops' failures, refused
registrations...) into Prometheus counters at scrape time, so the code that counts does not
change. `registry()` is a process's registry: its own metrics, the counters, and the
process's CPU, memory and file descriptors (prometheus_client's ProcessCollector).

Every /metrics (the orchestrator's, and `serve`'s for the controller and agents) takes one
query parameter, prometheus_client's ``name[]`` (repeatable: only the samples of those
names), and answers any other with 400 naming it (`query_names`): an unknown one was
ignored, so a misspelt filter served every metric. The orchestrator ignored name[] too, and
the listeners' matched nothing (prometheus_client finds a name's collector by what the
collectors describe, and these registries' describe nothing), so it is applied here (`Only`).
"""

from __future__ import annotations

import copy
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    ProcessCollector,
    disable_created_metrics,
    make_wsgi_app,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from netfate import counters
from netfate.http_host import check_request

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


MAX_QUERY_FIELDS = 100


def query_names(path: str, query: str) -> list[str]:
    """The sample names a /metrics query asks for with ``name[]`` (none: every sample), as
    prometheus_client's own handlers take them; ValueError naming a parameter it does not
    take, or an empty name."""
    try:
        fields = parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
    except ValueError:
        raise ValueError(f"{path} takes at most {MAX_QUERY_FIELDS} query parameters") from None
    unknown = sorted({k for k, _ in fields if k != "name[]"})
    if unknown:
        raise ValueError(f"{path} takes no query parameter "
                         f"{', '.join(repr(k[:64]) for k in unknown[:5])} (it takes: name[], "
                         "a sample name to keep, repeatable)")
    names = [v for _, v in fields]
    if "" in names:
        raise ValueError(f"{path}: name[] is empty (give a sample name, such as "
                         "process_cpu_seconds_total)")
    return names


class Only(Collector):
    """The samples of ``source`` with one of ``names`` (sample names, as name[] gives them:
    ``x_total``, ``x_bucket``...), in their families; the families left empty are left
    out."""

    def __init__(self, source: Collector, names: Iterable[str]) -> None:
        self.source = source
        self.names = frozenset(names)

    def collect(self) -> Iterator[Metric]:
        for metric in self.source.collect():
            samples = [s for s in metric.samples if s.name in self.names]
            if samples:
                kept = copy.copy(metric)
                kept.samples = samples
                yield kept


def selected(reg: Collector, names: list[str]) -> Collector:
    """What a /metrics query with these name[] serves."""
    return Only(reg, names) if names else reg


Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def wsgi_app(reg: Collector) -> Wsgi:
    """prometheus_client's WSGI app for ``reg`` (its format chosen by Accept, gzip), behind
    the checks of every project server: the Host and target (netfate.http_host, as the
    uvicorn servers have them) and the query (`query_names`); each refusal a 400 naming
    what is wrong."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        version = str(environ.get("SERVER_PROTOCOL", "")).removeprefix("HTTP/")
        try:
            check_request(str(environ["REQUEST_METHOD"]).encode("latin-1"),
                          str(environ.get("netfate.target", "/")).encode("latin-1"),
                          [h.encode("latin-1") for h in environ.get("netfate.hosts", [])],
                          version.encode("latin-1"))
            names = query_names(str(environ.get("PATH_INFO") or "/"),
                                str(environ.get("QUERY_STRING", "")))
        except ValueError as exc:  # BadRequest is one
            body = f"{exc}\n".encode("utf-8", "backslashreplace")
            start_response("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8"),
                                               ("Content-Length", str(len(body)))])
            return [body]
        # name[] applied here, not by prometheus_client (see the module's docstring)
        served: Iterable[bytes] = make_wsgi_app(selected(reg, names))(
            {**environ, "QUERY_STRING": ""}, start_response)
        return served

    return app


class _Handler(WSGIRequestHandler):
    """wsgiref's handler, silent, that hands the app the request's Host headers (its
    environ joins them into one) and its target as sent."""

    def get_environ(self) -> dict[str, Any]:
        env = dict(super().get_environ())
        env["netfate.hosts"] = self.headers.get_all("Host") or []
        env["netfate.target"] = self.path
        return env

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in progress does not hold the process at exit


def serve(port: int, reg: CollectorRegistry, host: str = "127.0.0.1") -> Any:
    """Serve ``reg`` at http://host:port/metrics from a daemon thread (loopback by
    default: Prometheus scrapes it from the same host), through `wsgi_app`. Returns the
    server, or None when the port cannot be had (logged as an error: a process that runs
    the network must not stop for want of its metrics)."""
    class Server(_Server):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    try:
        server = make_server(host, port, wsgi_app(reg), Server, handler_class=_Handler)
    except OSError as exc:
        log.error("no metrics: cannot listen on %s:%d: %s", host, port, exc)
        return None
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics at http://%s:%d/metrics", host, port)
    return server
