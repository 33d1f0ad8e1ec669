"""netfate bench vm: the VM flavour's column of the flavours table (NNF paper Table IV; the
NetFATE paper's live migration with Xen): for the firewall as a QEMU/TCG guest,

- start time, create_nf -> first packet forwarded through it (p50/p95, ms), with its phases
  (create_nf: QEMU resumed from the guest template, identity, bundle copied in, create
  script; start_nf: start script; steer -> first packet), and ``cold`` starts that boot the
  guest instead (the template's gain);
- the same run's baselines: the native firewall's create -> first packet, and bare (its
  ruleset loaded into a namespace that is already steered: the NNF paper's bare launch);
- memory per idle VM (QEMU's RSS, MB);
- image size on disk (kernel + initramfs, MB);
- live migration to another node's QEMU: QEMU's total time and downtime, and the largest gap
  of a 1 kHz UDP probe stream through the NF (the user's view: it includes switching the
  steering after the guest resumes), with a TCP connection checked after the move.

References: NNF Table IV (VM start 3 s, 390.6 MB, 522 MB image); Xen live migration ~60 ms
downtime. Targets: start <= 5 s under TCG, live-migration downtime <= 50 ms.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from netfate import catalogue
from netfate.bench.flavours import _bare
from netfate.bench.harness import Prober, machine, testbed
from netfate.bench.stats import ratio, summary
from netfate.drivers import vm_image, vm_template
from netfate.drivers.vm import BOOT_TIMEOUT, VM_MEMORY_MB, VmCompute
from netfate.interfaces import ComputeDriver
from netfate.roaming.probes import EchoServer, UdpProbe

FW_CONFIG: dict[str, Any] = {"default_out": "allow", "default_in": "deny", "rules": [
    {"action": "deny", "direction": "out", "proto": "tcp", "dport": 23}]}
ECHO_PORT = 5301


def _vm(driver: ComputeDriver) -> VmCompute:
    if not isinstance(driver, VmCompute):
        raise TypeError("the node's vm flavour is not netfate.drivers.vm")
    return driver


def run(runs: int = 3, migrations: int = 1, cold: int = 1) -> dict[str, Any]:
    """``runs`` VM firewalls started one after the other from the guest template, ``cold``
    more that boot, the native and bare baselines, then ``migrations`` live migrations of
    one of them between two nodes' drivers."""
    image = vm_image.build()
    with testbed() as tb:
        bundle = catalogue.install(tb.store, "firewall")
        node_name, mac, access, uplink = tb.access("client1")
        node = tb.node(node_name)
        src = _vm(node.driver("vm"))
        dst = _vm(tb.node(next(n for n in tb.node_names if n != node_name)).driver("vm"))
        inet = tb.internet()
        client_ns = tb.host("client1").netns
        prober = Prober(client_ns, inet.netns, tb.topology.internet_address)
        starts: list[float] = []
        cold_starts: list[float] = []
        phases: dict[str, list[float]] = {"create_nf": [], "start_nf": [], "first_packet": []}
        rss: list[int] = []
        moves: list[dict[str, Any]] = []
        made: list[tuple[VmCompute, str]] = []
        t0 = time.perf_counter()  # the template, once per image and device set: not a start
        vm_template.ensure(src.image_cache, image, len(bundle.descriptor.ports),
                           VM_MEMORY_MB, src.mtu, BOOT_TIMEOUT)
        template_s = time.perf_counter() - t0
        try:
            prober.first_arrival(0, timeout=10)  # warm the plain path (ARP, megaflows)
            native = _native(tb, node_name, bundle.sha256, runs, prober)
            bare = _bare(tb, node_name, bundle.sha256, runs, prober)
            for i in range(1, runs + cold + 1):
                src.templates = i > cold  # the cold boots first: the last one stays and moves
                t0 = time.perf_counter()
                info = src.create_nf(node_name, f"benchvm{i}", "firewall", bundle.sha256,
                                     FW_CONFIG)
                made.append((src, info.instance_id))
                t1 = time.perf_counter()
                node.attach_ports(info)
                src.start_nf(info.instance_id)
                node.steer(f"user:bench{i}", mac, access, uplink, [info])
                t2 = time.perf_counter()
                t3 = prober.first_arrival(i, timeout=30)
                (starts if i > cold else cold_starts).append((t3 - t0) * 1000)
                if i > cold:
                    for ph, v in zip(phases, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                        phases[ph].append(v * 1000)
                time.sleep(1.0)  # idle
                rss_b = src.status(info.instance_id).detail.get("vm_rss_bytes")
                if rss_b and i > cold:
                    rss.append(rss_b)
                prober.drain()
                if i < runs + cold:
                    node.remove_nf(info.instance_id)
                    made.pop()
            src.templates = True
            for k in range(migrations):
                iid = made[-1][1]
                moves.append(_migrate(tb, node, src, dst, iid, (mac, access, uplink),
                                      f"user:bench{runs + cold}", ECHO_PORT + k))
                src, dst = dst, src
                made[-1] = (src, moves[-1]["instance_id"])
        finally:
            prober.close()
            for drv, iid in made:
                with contextlib.suppress(Exception):
                    ports = [p.host_if for p in drv.info(iid).ports]
                    node.network.delete_ports(node.lsi, ports)
                with contextlib.suppress(Exception):
                    drv.delete_nf(iid)
    return {
        "benchmark": "vm-flavour",
        "runs": runs,
        "start_ms": summary(starts, digits=1),
        "start_phases_ms": {k: summary(v, digits=1) for k, v in phases.items()},
        "cold_boot_start_ms": summary(cold_starts, digits=1),
        "template_build_s": round(template_s, 1),
        "native_start_ms": summary(native, digits=1),
        "bare_start_ms": summary(bare, digits=1),
        "start_ratio_to_native": ratio(summary(starts).get("p50"), summary(native).get("p50")),
        "start_ratio_to_bare": ratio(summary(starts).get("p50"), summary(bare).get("p50")),
        "idle_rss_mb": summary([r / 1e6 for r in rss], digits=1),
        "image_mb": {"kernel": round(image.kernel_bytes / 1e6, 1),
                     "initrd": round(image.initrd_bytes / 1e6, 1),
                     "total": round(image.disk_bytes / 1e6, 1)},
        "live_migration": moves,
        "live_migration_summary": {
            "total_ms": summary([m["total_ms"] for m in moves], digits=1),
            "qemu_downtime_ms": summary([m["qemu_downtime_ms"] for m in moves], digits=1),
            "probe_gap_ms": summary([m["probe_gap_ms"] for m in moves], digits=1),
        },
        "targets": {"start_ms": 5000, "downtime_ms": 50},
        "reference": {"nnf_paper_vm_start_ms": 3000, "nnf_paper_vm_ram_mb": 390.6,
                      "nnf_paper_vm_image_mb": 522, "xen_live_migration_downtime_ms": 60},
        "accel": "tcg",
        "machine": machine(),
    }


def _native(tb: Any, node_name: str, sha: str, runs: int, prober: Prober) -> list[float]:
    """The native firewall's create -> first packet, ``runs`` times (the same run's
    baseline for the VM's start)."""
    node = tb.node(node_name)
    out = []
    for i in range(runs):
        t0 = time.perf_counter()
        info = node.deploy_nf(f"bvnat{i}", "firewall", sha, FW_CONFIG, flavour="native")
        rules = tb.steer("client1", [info], tag=f"bench:native{i}")
        try:
            out.append((prober.first_arrival(30_000 + i) - t0) * 1000)
        finally:
            tb.unsteer(node_name, rules)
            node.remove_nf(info.instance_id)
            prober.drain()
    return out


def _migrate(tb: Any, node: Any, src: VmCompute, dst: VmCompute, iid: str,
             where: tuple[str, str, str], tag: str, port: int) -> dict[str, Any]:
    """One make-before-break live migration under a probe stream and a TCP connection. The
    target's taps join the access node's LSI (the overlay is the orchestrator's part)."""
    inet = tb.internet()
    client_ns = tb.host("client1").netns
    # Fresh ports per migration: a closed listener's port is not free at once.
    echo = EchoServer(inet.netns, tb.topology.internet_address, port)
    probe = UdpProbe(client_ns, inet.netns, tb.topology.internet_address, port=port).start()
    from netfate.drivers.netns import tcp_connect

    conn = tcp_connect(client_ns, tb.topology.internet_address, port, timeout=5)
    try:
        time.sleep(0.5)
        w0 = time.time()
        t0 = time.perf_counter()
        new = dst.prepare_incoming(src.migration_spec(iid))
        node.attach_ports(new)
        t1 = time.perf_counter()
        figures = src.migrate_out(iid, str(new.detail["incoming"]))
        moved = dst.finish_incoming(new.instance_id, "running")
        node.steer(tag, *where, [moved])  # the same rule ids: replaced in place
        t2 = time.perf_counter()
        node.network.delete_ports(node.lsi, [p.host_if for p in src.info(iid).ports])
        src.delete_nf(iid)
        time.sleep(0.5)
        tcp_ok = False
        if conn is not None:
            conn.settimeout(5)
            with contextlib.suppress(OSError):
                conn.sendall(b"after")
                tcp_ok = conn.recv(16) == b"after"
    finally:
        probe.stop()
        echo.close()
        if conn is not None:
            conn.close()
    gap = probe.gap(after=w0 - 0.2)
    return {"instance_id": moved.instance_id, "prepare_ms": round((t1 - t0) * 1000, 1),
            "migrate_and_steer_ms": round((t2 - t1) * 1000, 1),
            "total_ms": figures["total_ms"], "qemu_downtime_ms": figures["downtime_ms"],
            "probe_gap_ms": gap.ms, "probes_lost": gap.lost,
            "transferred_mb": round((figures["transferred_bytes"] or 0) / 1e6, 1),
            "tcp_survived": tcp_ok}
