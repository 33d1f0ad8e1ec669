"""netfate bench density: N native firewalls created (ports on an LSI unless --no-ports,
started), then deleted.
Reports total time and memory per idle NF (MemAvailable before and after, so kernel memory
for namespaces, veths, rulesets and OVS ports all counts), and checks nothing is left."""

from __future__ import annotations

import gc
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from netfate import catalogue, naming
from netfate.bench.harness import machine, meminfo_available_kb, slab_kb, testbed
from netfate.drivers import cgroups, netns, netns_release
from netfate.errors import NetfateError

FW_CONFIG: dict[str, Any] = {
    "rules": [{"action": "deny", "direction": "out", "proto": "tcp", "dport": 23}],
}


def _settle() -> None:
    gc.collect()
    time.sleep(0.5)


def by_tenth(ms: list[float]) -> list[float]:
    """The median of each tenth of ``ms`` (ms, in order; fewer slices under 10 values)."""
    k = max(1, len(ms) // 10)
    return [round(statistics.median(ms[i:i + k]), 1) for i in range(0, len(ms) - k + 1, k)]


def _each(fn: Callable[[str], None], items: list[str], workers: int) -> None:
    """fn on every item, ``workers`` at a time (1: in order, in this thread)."""
    if workers <= 1:
        for x in items:
            fn(x)
        return
    with ThreadPoolExecutor(max_workers=workers) as ex:
        list(ex.map(fn, items))


def run(count: int = 100, node_name: str = "dc", ports: bool = True,
        workers: int = 1) -> dict[str, Any]:
    """``count`` firewalls created and started, then deleted, ``workers`` at a time (as an
    agent converging a desired state would; 1: one after the other)."""
    with testbed() as tb:
        bundle = catalogue.install(tb.store, "firewall")
        node = tb.node(node_name)
        owners = [f"d{i}" for i in range(count)]
        created: list[str] = []
        _settle()
        mem0 = meminfo_available_kb()
        slab0 = slab_kb()
        failures: list[str] = []
        t0 = time.perf_counter()
        create_ms: list[float] = []
        delete_ms: list[float] = []
        stop = threading.Event()  # after 6 failures: nothing more is created

        def make(o: str) -> None:
            if stop.is_set():
                return
            tc = time.perf_counter()
            try:
                if ports:
                    info = node.deploy_nf(o, "firewall", bundle.sha256, FW_CONFIG)
                else:  # the NF alone: namespace, veths, ruleset, cgroup; not on the LSI
                    info = node.compute.create_nf(node_name, o, "firewall", bundle.sha256,
                                                  FW_CONFIG)
                    node.compute.start_nf(info.instance_id)
                created.append(info.instance_id)
                create_ms.append((time.perf_counter() - tc) * 1000)
            except NetfateError as exc:
                failures.append(str(exc))
                if len(failures) > 5:
                    stop.set()

        def remove(iid: str) -> None:
            td = time.perf_counter()
            node.remove_nf(iid)
            delete_ms.append((time.perf_counter() - td) * 1000)

        try:
            _each(make, owners, workers)
            t1 = time.perf_counter()
            nf_process_kb = sum((cgroups.memory_bytes(i) or 0) for i in created) // 1024
            _settle()
            mem1 = meminfo_available_kb()
            slab1 = slab_kb()
            ovs_ports = len(node.network.list_ports(node.lsi))
        finally:
            t2 = time.perf_counter()
            _each(remove, list(created), workers)
            t2b = time.perf_counter()
            # A delete returns before the kernel has removed the NF's ports (netns_release);
            # the time until it has counts.
            lingering = netns_release.wait_released(120.0)
            t3 = time.perf_counter()
        _settle()
        mem2 = meminfo_available_kb()
        left_ns = [n for n in netns.list_names()
                   if any(n == naming.nf_netns(node_name, o, "firewall") for o in owners)]
        left_links = len([p for p in node.network.list_ports(node.lsi)
                          if naming.is_nf_port(p)])
        left_cg = [c for c in cgroups.list_ours() if c in set(created)]
        theirs = {naming.nf_port(i, p.name) for i in created for p in bundle.descriptor.ports}
        left_host = [h for h in netns.list_links(naming.PREFIX) if h in theirs]
    n = len(created)
    # Kernel memory is what a native NF costs (namespace, veths, ruleset, conntrack, OVS
    # ports); MemAvailable moves with everything else on a shared machine, so it is only
    # reported alongside.
    kernel_keys = ("Slab", "Percpu", "KernelStack", "VmallocUsed", "PageTables")
    kernel_kb = sum(slab1.get(k, 0) - slab0.get(k, 0) for k in kernel_keys)
    per_nf_kb = (kernel_kb + nf_process_kb) / n if n else 0.0
    return {
        "benchmark": "density",
        "count": count,
        "ports_on_lsi": ports,
        "workers": workers,
        "created": n,
        "failures": failures[:5],
        "create_seconds": round(t1 - t0, 2),
        "delete_seconds": round(t3 - t2, 2),
        # of which after the last delete returned, until the kernel had removed every port
        "kernel_cleanup_seconds": round(t3 - t2b, 2),
        "total_seconds": round((t1 - t0) + (t3 - t2), 2),
        "create_per_nf_ms": round((t1 - t0) * 1000 / max(n, 1), 2),
        # Where it bends: the median create (delete) of each tenth, in order.
        "create_ms_by_tenth": by_tenth(create_ms),
        "delete_ms_by_tenth": by_tenth(delete_ms),
        "memory_per_nf_kb": round(per_nf_kb, 1),
        "memory_per_nf_mb": round(per_nf_kb / 1024, 3),
        "kernel_per_nf_kb": {k: round((slab1.get(k, 0) - slab0.get(k, 0)) / max(n, 1), 1)
                             for k in kernel_keys},
        "nf_processes_kb_total": nf_process_kb,
        "memavailable_drop_per_nf_kb": round((mem0 - mem1) / max(n, 1), 1),
        "ovs_ports_at_peak": ovs_ports,
        "memory_returned_kb": mem2 - mem1,
        "left_behind": {"namespaces": len(left_ns), "lsi_ports": left_links,
                        "cgroups": len(left_cg), "host_links": len(left_host)},
        "ports_lingering_after_120_s": len(lingering),
        "targets": {"count": 1000, "total_seconds": 30, "memory_per_nf_mb": 1.0},
        "reference": {"gnf_containers": 50, "gnf_seconds": 10, "gnf_mb_each": 2.21},
        "machine": machine(),
    }
