"""netfate bench nf-start: from create_nf to the first packet forwarded through a firewall
of one flavour (native by default; cold, then born into a pool of pre-made namespaces or
containers), phase by phase, against the bare baseline of
loading the same ruleset file into a namespace that already exists, is bridged and is steered
(the NNF paper measured 727 ms against 154 ms bare, 4.7x). Runs 2..N of one config find its
compiled ruleset in the node's cache."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from netfate import catalogue
from netfate.bench.harness import Prober, machine, testbed
from netfate.bench.stats import ratio, summary
from netfate.paths import node_dir
from netfate.proc import run as run_cmd

FW_CONFIG: dict[str, Any] = {
    "default_out": "allow",
    "default_in": "deny",
    "rules": [
        {"action": "deny", "direction": "out", "proto": "tcp", "dport": 23},
        {"action": "allow", "direction": "out", "proto": "udp", "dport": 9999},
    ],
}


def _one(tb: Any, node: Any, drv: Any, node_name: str, bundle_sha: str, prober: Prober,
         owner: str, run_no: int, phases: dict[str, list[float]]) -> float:
    """One NF from create_nf to its first forwarded packet, in ms (phases appended)."""
    t0 = time.perf_counter()
    info = drv.create_nf(node_name, owner, "firewall", bundle_sha, FW_CONFIG)
    t1 = time.perf_counter()
    node.attach_ports(info)
    t2 = time.perf_counter()
    drv.start_nf(info.instance_id)
    t3 = time.perf_counter()
    rules = tb.steer("client1", [info], tag=f"bench:{owner}")
    t4 = time.perf_counter()
    t5 = prober.first_arrival(run_no)
    for k, a, b in (("create_nf", t0, t1), ("ports", t1, t2), ("start_nf", t2, t3),
                    ("steer", t3, t4), ("first_packet", t4, t5)):
        phases[k].append((b - a) * 1000)
    tb.unsteer(node_name, rules)
    node.remove_nf(info.instance_id)
    prober.drain()
    return (t5 - t0) * 1000


def run(runs: int = 50, pool: int = 2, flavour: str = "native") -> dict[str, Any]:
    """``runs`` cold starts (a namespace, or a container, made per NF), then ``runs`` from
    a pool of ``pool`` pre-made ones (refilled between runs, untimed; 0: none), of
    `flavour` (native or container; UnknownFlavour if the CPE does not host it)."""
    from netfate.bench.flavours import _refiller

    with testbed() as tb:
        bundle = catalogue.install(tb.store, "firewall")
        node_name = tb.access("client1")[0]
        node = tb.node(node_name)
        drv = node.driver(flavour)
        inet = tb.internet()
        prober = Prober(tb.host("client1").netns, inet.netns, tb.topology.internet_address)
        keys = ("create_nf", "ports", "start_nf", "steer", "first_packet")
        phases: dict[str, list[float]] = {k: [] for k in keys}
        pool_phases: dict[str, list[float]] = {k: [] for k in keys}
        totals: list[float] = []
        pooled: list[float] = []
        bare: list[float] = []
        direct = tb.open_path("client1", "bench:direct")
        resize = getattr(drv, "set_pool_size", None)
        try:
            # Warm the path (ARP, OVS megaflows) so each run measures the NF, not the first use.
            prober.first_arrival(0)
            if resize is not None:
                resize(0)
            for i in range(1, runs + 1):
                totals.append(_one(tb, node, drv, node_name, bundle.sha256, prober,
                                   f"bench{i}", i, phases))
            if resize is not None and pool > 0:
                refill = _refiller(drv, resize, pool, bundle.sha256)
                for i in range(runs + 1, 2 * runs + 1):
                    refill()  # a full pool, untimed: the refill thread's job
                    pooled.append(_one(tb, node, drv, node_name, bundle.sha256, prober,
                                       f"bench{i}", i, pool_phases))
                resize(0)
            # Bare: the same ruleset into an NF namespace that already exists and is steered.
            info = node.deploy_nf("benchbare", "firewall", bundle.sha256, FW_CONFIG)
            rules = tb.steer("client1", [info], tag="bench:bare")
            ruleset = _ruleset(info.instance_id, node_name)
            try:
                for i in range(runs):
                    for family, table in (("inet", "fate_fw"), ("bridge", "fate_fw_dir")):
                        run_cmd(["nft", "delete", "table", family, table], netns=info.netns,
                                check=False)
                    prober.drain()
                    t0 = time.perf_counter()
                    run_cmd(["nft", "-f", ruleset], netns=info.netns)
                    t1 = prober.first_arrival(10_000 + i)
                    bare.append((t1 - t0) * 1000)
            finally:
                tb.unsteer(node_name, rules)
                node.remove_nf(info.instance_id)
        finally:
            prober.close()
            if resize is not None:
                with contextlib.suppress(Exception):
                    resize(0)
            with contextlib.suppress(Exception):
                tb.unsteer(node_name, direct)
            for i in range(1, 2 * runs + 1):  # a failed run must not leave its NF behind
                with contextlib.suppress(Exception):
                    tb.remove_nf(node_name, f"{node_name}-bench{i}-firewall")
    nf = summary(totals, digits=3)
    base = summary(bare, digits=3)
    from_pool = summary(pooled, digits=3)
    return {
        "benchmark": "nf-start",
        "flavour": flavour,
        "runs": runs,
        "nf_ms": nf,
        "pool_ms": from_pool,
        "pool_size": pool,
        "bare_ms": base,
        "ratio_p50": ratio(nf.get("p50"), base.get("p50")),
        "pool_ratio_p50": ratio(from_pool.get("p50"), base.get("p50")),
        "phases_ms_p50": {k: summary(v, digits=3).get("p50") for k, v in phases.items()},
        "pool_phases_ms_p50": {k: summary(v, digits=3).get("p50")
                               for k, v in pool_phases.items()},
        "targets": {"p50_ms": 25, "ratio": 3.0, "pool_p50_ms": 10},
        "reference": {"nnf_paper_ms": 727, "nnf_paper_bare_ms": 154, "nnf_paper_ratio": 4.7},
        "machine": machine(),
    }


def _ruleset(instance_id: str, node: str) -> str:
    """The very ruleset file the firewall NF loaded at start."""
    return str(node_dir(node) / "nfs" / instance_id / "state" / "ruleset.nft")
