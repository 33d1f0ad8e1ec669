"""netfate bench flavours: the firewall in every flavour the node hosts, side by side in one
run, against the bare baseline (the NNF paper's Table IV; the Glasgow paper's Fig. 2).

Per flavour: start time, create_nf to the first packet forwarded through the steered NF
(p50/p95); memory per idle NF (its cgroup's memory.usage_in_bytes once started); the image's
size on disk (container: the compressed blobs and the unpacked rootfs; native: the bundle);
and density: `density` NFs created and started, `workers` at a time (total seconds). Start
is measured cold and from a pool (native: pre-made namespaces; container: pre-made
containers, `runc create` done ahead; SOCK and Catalyzer), with what a full pool holds. The
VM column (QEMU/TCG, seconds per boot) is opt-in. Bare: the same ruleset loaded into a
namespace that already exists and is steered. Targets for the container flavour (issue 10):
start p50 <= 60 ms, <= 3 MB per idle container, 50 in <= 5 s.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
        pool: int = 2, workers: int = 1, vm: bool = False, vm_runs: int = 2,
        settle_ms: int = 0) -> dict[str, Any]:
    """``runs`` cold starts per flavour, then ``runs`` from a pool of ``pool`` pre-made
    namespaces (native) or containers (container), refilled between runs untimed (0: none);
    ``density`` NFs created and started by ``workers`` threads; with ``vm``, the VM column
    from ``vm_runs`` QEMU/TCG starts and one live migration (netfate.bench.vm_flavour).
    ``settle_ms``: an untimed pause before each timed start (bare's too), so it does not
    share the node with the previous run's teardown: the kernel unregisters a deleted NF
    namespace's bridge after remove_nf returns, holding the RTNL lock ~20 ms, and the next
    NF's netlink requests (and ovs-vswitchd's) wait for it (measured 2026-12-02)."""
    t_run = time.perf_counter()

    def note(msg: str) -> None:  # progress, with the seconds so far
        say(f"[{time.perf_counter() - t_run:.0f} s] {msg}")

    note("testbed")
    with testbed() as tb:
        bundle = catalogue.install(tb.store, "firewall")
        node_name = tb.access("client1")[0]
        node = tb.node(node_name)
        flavours = [f for f in ORDER if f in node.computes and f != "vm"
                    and f in bundle.descriptor.flavours]
        prober = Prober(tb.host("client1").netns, tb.internet().netns,
                        tb.topology.internet_address)
        direct = tb.open_path("client1", "bench:direct")
        out: dict[str, Any] = {}
        try:
            prober.first_arrival(0)
            seq = 1
            for flavour in flavours:
                drv = node.driver(flavour)
                resize = getattr(drv, "set_pool_size", None)
                note(f"{flavour}: {runs} cold starts")
                if resize is not None:
                    resize(0)
                col = _starts(tb, node, node_name, bundle.sha256, flavour, "c", runs, prober, seq,
                              settle=settle_ms / 1000)
                seq += runs
                if resize is not None and pool > 0:
                    note(f"{flavour}: {runs} starts from a pool of {pool}")
                    refill = _refiller(drv, resize, pool, bundle.sha256)
                    pooled = _starts(tb, node, node_name, bundle.sha256, flavour, "p", runs,
                                     prober, seq, refill, settle=settle_ms / 1000)
                    seq += runs
                    col["pool"] = {"size": pool, "start_ms": summary(pooled["ms"], digits=3),
                                   "held_memory_mb": round(_pool_memory(drv) / 2**20, 3)}
                    resize(0)
                note(f"{flavour}: {density} NFs for density ({workers} at a time)")
                dense_s, dense_mem = _density(node, bundle.sha256, flavour, density, workers)
                out[flavour] = {
                    "start_ms": summary(col["ms"], digits=3),
                    **({"pool": col["pool"]} if "pool" in col else {}),
                    "idle_memory_mb": summary([m / 2**20 for m in col["mem"] + dense_mem],
                                              digits=3),
                    "disk": _disk(tb, flavour, bundle.root, bundle.descriptor.version),
                    "density": {"count": density, "workers": workers,
                                "seconds": round(dense_s, 3)},
                }
            note("bare")
            out["bare"] = {"start_ms": summary(_bare(tb, node_name, bundle.sha256, runs,
                                                     prober, settle_ms / 1000), digits=3)}
            if "container" in flavours:
                note("container: the runc floor")
                out["container"]["runc_floor_ms"] = _runc_floor(
                    node.driver("container"), bundle.descriptor.version, runs)
        finally:
            prober.close()
            for f in flavours:  # a failed run must not leave a pool behind
                close = getattr(node.driver(f), "close", None)
                if close is not None:
                    with contextlib.suppress(Exception):
                        close()
            with contextlib.suppress(Exception):
                tb.unsteer(node_name, direct)
    if vm:
        note(f"vm: {vm_runs} starts and a live migration (QEMU/TCG)")
        out["vm"] = _vm_column(vm_runs)
    bare_p50 = out["bare"]["start_ms"].get("p50")
    for f in [*flavours, *(["vm"] if vm else [])]:
        out[f]["start_ratio_to_bare"] = ratio(out[f]["start_ms"].get("p50"), bare_p50)
        if "pool" in out[f]:
            out[f]["pool"]["start_ratio_to_bare"] = ratio(
                out[f]["pool"]["start_ms"].get("p50"), bare_p50)
    return {
        "benchmark": "flavours", "runs": runs, "settle_ms": settle_ms, "flavours": out,
        "targets": {"container": {"start_p50_ms": 60, "idle_memory_mb": 3,
                                  "density_50_seconds": 5},
                    "vm": {"start_ms": 5000, "downtime_ms": 50}},
        "reference": {"nnf_table_iv": {"start_ms": {"vm": 3000, "docker": 350, "native": 727,
                                                    "bare": 154},
                                       "ram_mb": {"vm": 390.6, "docker": 24.2, "native": 19.4},
                                       "image_mb": {"vm": 522, "docker": 240, "native": 5}},
                      "glasgow_mb_per_container": 2.21,
                      "glasgow_50_containers_s": 10, "xen_live_migration_downtime_ms": 60},
        "machine": machine(),
    }


def _starts(tb: Testbed, node: Any, node_name: str, sha: str, flavour: str, kind: str,
            runs: int, prober: Prober, seq: int,
            before: Callable[[], None] | None = None, settle: float = 0.0) -> dict[str, Any]:
    """``runs`` firewalls of `flavour`, each from create_nf to its first forwarded packet
    (ms), and each one's idle memory (its cgroup, bytes). ``before`` runs untimed first,
    then a pause of ``settle`` s."""
    ms: list[float] = []
    mem: list[int] = []
    for i in range(runs):
        if before is not None:
            before()
        time.sleep(settle)
        owner = f"bf{flavour[:3]}{kind}{i}"
        t0 = time.perf_counter()
        info = node.deploy_nf(owner, "firewall", sha, FW_CONFIG, flavour=flavour)
        try:
            rules = tb.steer("client1", [info], tag=f"bench:{owner}")
            t1 = prober.first_arrival(seq + i)
            ms.append((t1 - t0) * 1000)
            time.sleep(0.05)  # idle
            mem.append(cgroups.memory_bytes(info.instance_id) or 0)
            tb.unsteer(node_name, rules)
        finally:
            node.remove_nf(info.instance_id)
        prober.drain()
    return {"ms": ms, "mem": mem}


def _refiller(drv: Any, resize: Callable[..., None], pool: int,
              sha: str) -> Callable[[], None]:
    """A full pool before a timed run (the background refill's job, done untimed)."""
    warm = getattr(drv, "warm", None)

    def refill() -> None:
        if warm is not None:  # container: pre-made containers of this bundle
            resize(pool, None)
            warm(sha)
        else:  # native: pre-made namespaces with the firewall's ports
            resize(pool)
    return refill


def _pool_memory(drv: Any) -> int:
    """What a full pool holds (bytes): the pre-made containers' cgroups (namespaces and
    veths are kernel memory no cgroup of ours is charged with)."""
    held = getattr(drv, "pooled_memory_bytes", None)
    return int(held()) if held is not None else 0


def _density(node: Any, sha: str, flavour: str, count: int,
             workers: int) -> tuple[float, list[int]]:
    """``count`` firewalls created, attached and started by ``workers`` threads (the LSI's
    port changes one at a time): total seconds, and each one's idle memory (bytes)."""
    drv = node.driver(flavour)
    lock = threading.Lock()
    made: list[Any] = []

    def one(i: int) -> None:
        info = drv.create_nf(node.name, f"bd{flavour[:3]}{i}", "firewall", sha, FW_CONFIG)
        with lock:
            made.append(info)
            node.attach_ports(info)
        drv.start_nf(info.instance_id)

    t0 = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as ex:
            for f in [ex.submit(one, i) for i in range(count)]:
                f.result()
        seconds = time.perf_counter() - t0
        mem = [cgroups.memory_bytes(i.instance_id) or 0 for i in made]
    finally:
        def remove(instance_id: str) -> None:
            with contextlib.suppress(Exception):
                node.remove_nf(instance_id)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as ex:
            list(ex.map(remove, [i.instance_id for i in made]))
    return seconds, mem


def _vm_column(runs: int) -> dict[str, Any]:
    """The VM flavour's figures in this table's shape, from netfate.bench.vm_flavour (its
    own testbed session: QEMU/TCG boots take seconds, so they are opt-in here)."""
    from netfate.bench import vm_flavour

    r = vm_flavour.run(runs=runs, migrations=1)
    lm = r.get("live_migration_summary", {})
    return {"start_ms": r["start_ms"], "idle_memory_mb": r["idle_rss_mb"],
            "disk": {"image_mb": r["image_mb"].get("total")},
            "live_migration": {"total_ms": lm.get("total_ms"),
                               "qemu_downtime_ms": lm.get("qemu_downtime_ms"),
                               "probe_gap_ms": lm.get("probe_gap_ms")},
            "accel": r.get("accel")}


def _disk(tb: Testbed, flavour: str, bundle_root: Path, version: str) -> dict[str, float]:
    bundle_mb = _du(bundle_root) / 2**20
    if flavour != "container":
        return {"bundle_mb": round(bundle_mb, 3)}
    store = ImageStore(paths.run_dir() / "images")
    info = store.resolve(image_tag("firewall", version))
    rootfs = store.rootfs(info.tag)
    return {"bundle_mb": round(bundle_mb, 3), "image_mb": round(info.size / 2**20, 3),
            "unpacked_mb": round(_du(rootfs) / 2**20, 3)}


def _bare(tb: Testbed, node_name: str, sha: str, runs: int, prober: Prober,
          settle: float = 0.0) -> list[float]:
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
            time.sleep(settle)
            prober.drain()
            t0 = time.perf_counter()
            run_cmd(["nft", "-f", ruleset], netns=info.netns)
            out.append((prober.first_arrival(20_000 + i) - t0) * 1000)
    finally:
        tb.unsteer(node_name, rules)
        node.remove_nf(info.instance_id)
    return out


def _runc_floor(drv: Any, version: str, runs: int) -> dict[str, Any]:
    """What runc alone costs here, the floor under a container NF's start, in ms: `runc run
    -d` of the firewall's image (its idle process) in a namespace that exists; `runc start`
    of a container made by `runc create` (what a start from the pool pays); and `runc exec`
    of a shell doing nothing in a running container (what each lifecycle script run inside
    it pays on top of the script)."""
    from netfate.drivers import container_spec, netns
    from netfate.drivers.container_pooling import write_spec

    ns = "fate-bench-floor"
    tag = image_tag("firewall", version)
    rootfs = drv.images.rootfs(tag)
    cfg = drv.images.config(tag).get("config") or {}
    home = paths.run_dir() / "bench-floor"
    ms: dict[str, list[float]] = {k: [] for k in ("runc_run", "runc_start", "runc_exec")}
    netns.create(ns)
    try:
        for i in range(runs):
            for kind in ("run", "start"):
                cid = f"fate-bench-floor-{kind}-{i}"
                d = home / cid
                (d / "dir").mkdir(parents=True, exist_ok=True)
                write_spec(d, container_spec.spec(
                    rootfs=rootfs, args=[*(cfg.get("Entrypoint") or []), *cfg["Cmd"]],
                    env=cfg.get("Env") or [], hostname="floor", netns=ns,
                    cgroup=cid.removeprefix("fate-"), memory_mb=32, cpu_percent=50,
                    capabilities=["CAP_NET_ADMIN"], bundle_dir=d / "dir", nf_dir=d / "dir",
                    notify_dir=d / "dir", cache_dir=d / "dir"))
                try:
                    if kind == "run":
                        t0 = time.perf_counter()
                        drv.runc.run(cid, d, d / "log")
                        ms["runc_run"].append((time.perf_counter() - t0) * 1000)
                        argv = drv.runc.exec_argv(cid, ["/bin/sh", "-c", ":"], {}, "/")
                        t0 = time.perf_counter()
                        run_cmd(argv)
                        ms["runc_exec"].append((time.perf_counter() - t0) * 1000)
                    else:
                        drv.runc.create(cid, d, d / "log")
                        t0 = time.perf_counter()
                        drv.runc.start(cid)
                        ms["runc_start"].append((time.perf_counter() - t0) * 1000)
                finally:
                    drv.runc.delete(cid)
    finally:
        netns.delete(ns)
        shutil.rmtree(home, ignore_errors=True)
    return {k: summary(v, digits=3) for k, v in ms.items()}
