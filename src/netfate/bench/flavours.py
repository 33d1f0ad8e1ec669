"""netfate bench flavours: the firewall in every flavour the node hosts, side by side in one
run, against the bare baseline (the NNF paper's Table IV; the Glasgow paper's Fig. 2).

Per flavour: start time, create_nf to the first packet forwarded through the steered NF
(p50/p95); memory per idle NF (its cgroup's memory.usage_in_bytes once started); the image's
size on disk (container: the compressed blobs and the unpacked rootfs; native: the bundle);
and density: `density` NFs created and started one after another (total seconds). Bare: the
same ruleset loaded into a namespace that already exists and is steered. Targets for the
container flavour (issue 10): start p50 <= 60 ms, <= 3 MB per idle container, 50 in <= 5 s.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netfate import catalogue, paths
from netfate.bench.harness import Prober, machine, testbed
from netfate.bench.nf_start import FW_CONFIG, _ruleset
from netfate.bench.stats import ratio, summary
from netfate.drivers import cgroups
from netfate.oci.store import ImageStore, image_tag
from netfate.proc import run as run_cmd
from netfate.testbed.context import Testbed

ORDER = ("native", "container", "vm")  # the columns, when the node hosts them


def _du(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _quiet(_: str) -> None:
    pass


def run(runs: int = 10, density: int = 10, say: Callable[[str], None] = _quiet,
        ) -> dict[str, Any]:
    with testbed() as tb:
        bundle = catalogue.install(tb.store, "firewall")
        node_name = tb.access("client1")[0]
        node = tb.node(node_name)
        flavours = [f for f in ORDER if f in node.computes
                    and f in bundle.descriptor.flavours]
        prober = Prober(tb.host("client1").netns, tb.internet().netns,
                        tb.topology.internet_address)
        direct = tb.open_path("client1", "bench:direct")
        out: dict[str, Any] = {}
        try:
            prober.first_arrival(0)
            seq = 1
            for flavour in flavours:
                say(f"{flavour}: {runs} starts")
                starts, mem = [], []
                for i in range(runs):
                    owner = f"bf{flavour[:3]}{i}"
                    t0 = time.perf_counter()
                    info = node.deploy_nf(owner, "firewall", bundle.sha256, FW_CONFIG,
                                          flavour=flavour)
                    rules = tb.steer("client1", [info], tag=f"bench:{owner}")
                    t1 = prober.first_arrival(seq)
                    seq += 1
                    starts.append((t1 - t0) * 1000)
                    time.sleep(0.05)  # idle
                    mem.append(cgroups.memory_bytes(info.instance_id) or 0)
                    tb.unsteer(node_name, rules)
                    node.remove_nf(info.instance_id)
                    prober.drain()
                say(f"{flavour}: {density} NFs for density")
                t0 = time.perf_counter()
                made = []
                try:
                    for i in range(density):
                        made.append(node.deploy_nf(f"bd{flavour[:3]}{i}", "firewall",
                                                   bundle.sha256, FW_CONFIG, flavour=flavour))
                    dense_s = time.perf_counter() - t0
                    dense_mem = [cgroups.memory_bytes(i.instance_id) or 0 for i in made]
                finally:
                    for info in made:
                        with contextlib.suppress(Exception):
                            node.remove_nf(info.instance_id)
                out[flavour] = {
                    "start_ms": summary(starts, digits=3),
                    "idle_memory_mb": summary([m / 2**20 for m in mem + dense_mem], digits=3),
                    "disk": _disk(tb, flavour, bundle.root, bundle.descriptor.version),
                    "density": {"count": density, "seconds": round(dense_s, 3)},
                }
            out["bare"] = {"start_ms": summary(_bare(tb, node_name, bundle.sha256, runs,
                                                     prober), digits=3)}
        finally:
            prober.close()
            with contextlib.suppress(Exception):
                tb.unsteer(node_name, direct)
    bare_p50 = out["bare"]["start_ms"].get("p50")
    for f in flavours:
        out[f]["start_ratio_to_bare"] = ratio(out[f]["start_ms"].get("p50"), bare_p50)
    return {
        "benchmark": "flavours", "runs": runs, "flavours": out,
        "targets": {"container": {"start_p50_ms": 60, "idle_memory_mb": 3,
                                  "density_50_seconds": 5}},
        "reference": {"nnf_table_iv": {"start_ms": {"vm": 3000, "docker": 350, "native": 727,
                                                    "bare": 154},
                                       "ram_mb": {"vm": 390.6, "docker": 24.2, "native": 19.4},
                                       "image_mb": {"vm": 522, "docker": 240, "native": 5}},
                      "glasgow_mb_per_container": 2.21},
        "machine": machine(),
    }


def _disk(tb: Testbed, flavour: str, bundle_root: Path, version: str) -> dict[str, float]:
    bundle_mb = _du(bundle_root) / 2**20
    if flavour != "container":
        return {"bundle_mb": round(bundle_mb, 3)}
    store = ImageStore(paths.run_dir() / "images")
    info = store.resolve(image_tag("firewall", version))
    rootfs = store.rootfs(info.tag)
    return {"bundle_mb": round(bundle_mb, 3), "image_mb": round(info.size / 2**20, 3),
            "unpacked_mb": round(_du(rootfs) / 2**20, 3)}


def _bare(tb: Testbed, node_name: str, sha: str, runs: int, prober: Prober) -> list[float]:
    node = tb.node(node_name)
    info = node.deploy_nf("bfbare", "firewall", sha, FW_CONFIG)
    rules = tb.steer("client1", [info], tag="bench:bare")
    ruleset = _ruleset(info.instance_id, node_name)
    out = []
    try:
        for i in range(runs):
            for family, table in (("inet", "fate_fw"), ("bridge", "fate_fw_dir")):
                run_cmd(["nft", "delete", "table", family, table], netns=info.netns,
                        check=False)
            prober.drain()
            t0 = time.perf_counter()
            run_cmd(["nft", "-f", ruleset], netns=info.netns)
            out.append((prober.first_arrival(20_000 + i) - t0) * 1000)
    finally:
        tb.unsteer(node_name, rules)
        node.remove_nf(info.instance_id)
    return out
