"""`netfate bench handover`: roam a client back and forth between two CPEs, N times, with a
1 kHz UDP probe stream and a TCP stream running. The user has a personal firewall that
migrates with its state at each move. Baseline, same run: a user without NFs roaming the
other client (re-authentication and steering only, nothing to migrate)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from netfate.api_auth import BearerAuth
from netfate.bench.stats import median, ratio, summary
from netfate.roaming.handover import Handover, handover
from netfate.roaming.probes import EchoServer, TcpStream, UdpProbe, reachable
from netfate.roaming.session import ensure_user, portal_login, running_at, wait_for
from netfate.testbed import lifecycle
from netfate.testbed.settings import TestbedSettings
from netfate.testbed.topology import load_topology

PORT = 5201


def _stats(runs: list[Handover]) -> dict[str, Any]:
    gaps = [r.gap_ms for r in runs]
    assoc = [r.from_association_ms for r in runs if r.from_association_ms is not None]
    g, a = summary(gaps), summary(assoc)
    out: dict[str, Any] = {
        "runs": len(runs),
        "gap_ms": {"p50": g.get("p50"), "p95": g.get("p95"), "max": g.get("max")},
        "from_association_ms": {"p50": a.get("p50"), "p95": a.get("p95"), "max": a.get("max")},
        "tcp_survived": sum(r.tcp_survived for r in runs),
    }
    keys = ("detect_ms", "reauth_radius_ms", "anchor_ms", "plan_ms", "anchor_rounds_ms")
    for k in keys:
        vals = [float(r.breakdown[k]) for r in runs if r.breakdown.get(k) is not None]
        if vals:
            out[f"{k}_p50"] = median(vals)
    for k in ("instantiate_ms", "export_ms", "import_ms", "switch_ms", "release_ms"):
        vals = [float(v[k]) for r in runs for v in r.breakdown.values()
                if isinstance(v, dict) and k in v]
        if vals:
            out[f"{k}_p50"] = median(vals)
    mig = [r.migrated_in_ms for r in runs if r.migrated_in_ms is not None]
    if mig:
        out["migration_done_ms_p50"] = median(mig)
    gone = [r.source_gone_ms for r in runs if r.source_gone_ms is not None]
    if gone:  # the old NF deleted on its node as well (its row gone)
        st = summary(gone)
        out["source_deleted_ms"] = {"p50": st.get("p50"), "p95": st.get("p95")}
    return out


def run(runs: int = 10, say: Callable[[str], None] = lambda _: None,
        testbed: TestbedSettings | None = None) -> dict[str, Any]:
    """``testbed``: the testbed's settings (ports, topology); its idle timeout is raised to
    300 s so nobody goes idle mid-benchmark."""
    tb = (testbed or TestbedSettings()).model_copy(update={"idle_timeout": 300})
    topo = load_topology(tb.topology)
    api = httpx.Client(base_url=lifecycle.api_url(tb) + "/api/v1", timeout=30,
                     auth=BearerAuth())
    servers: list[EchoServer] = []
    streams: list[Any] = []
    results: dict[str, list[Handover]] = {"firewall": [], "no_nf": []}
    try:
        say("testbed up")
        lifecycle.down()
        lifecycle.up(topo, settings=tb)
        inet = next(h for h in topo.hosts if h.role == "internet")
        ip = topo.internet_address
        servers.append(EchoServer(inet.netns, ip, PORT))
        users = {"bench-fw": ("client1", ["firewall"]), "bench-plain": ("client2", [])}
        for user, (host, nfs) in users.items():
            ensure_user(api, user, "bench-secret-1", nfs)
            portal_login(topo, host, user, "bench-secret-1")
            if nfs:
                wait_for(lambda u=user: bool(running_at(api, u)), 30,  # type: ignore[misc]
                         f"{user}'s NFs")
        for user, (host, nfs) in users.items():
            ns = topo.host(host).netns
            wait_for(lambda ns=ns: reachable(ns, ip, PORT, 0.5), 10,  # type: ignore[misc]
                     f"{user}'s steering")
            tcp = TcpStream(ns, ip, PORT).start()
            probe = UdpProbe(ns, inet.netns, ip, port=7000 + len(streams)).start()
            streams.append((user, host, "firewall" if nfs else "no_nf", tcp, probe))
        time.sleep(1)
        at = {"client1": "cpe1", "client2": "cpe2"}
        for k in range(runs):
            for user, host, kind, tcp, probe in streams:
                dst = "cpe2" if at[host] == "cpe1" else "cpe1"
                say(f"run {k + 1}/{runs}: {host} ({kind}) {at[host]} -> {dst}")
                h = handover(api, host, user, dst, probe, tcp)
                results[kind].append(h)
                at[host] = dst
                if not tcp.alive:  # counted; a fresh stream for the next run
                    tcp.stop()
                    ns = topo.host(host).netns
                    wait_for(lambda ns=ns: reachable(ns, ip, PORT, 0.5), 10,  # type: ignore[misc]
                             "the path after a failed run")
                    idx = [s[0] for s in streams].index(user)
                    streams[idx] = (user, host, kind, TcpStream(ns, ip, PORT).start(), probe)
                time.sleep(0.5)
    finally:
        for _, _, _, tcp, probe in streams:
            tcp.stop()
            probe.stop()
        for s in servers:
            s.close()
        api.close()
        lifecycle.down()
    fw, base = _stats(results["firewall"]), _stats(results["no_nf"])
    return {
        "benchmark": "handover",
        "probe_rate_hz": 1000,
        "firewall": fw,
        "baseline_no_nf": base,
        "gap_p50_ratio_vs_baseline": ratio(fw["gap_ms"]["p50"], base["gap_ms"]["p50"]),
        "target": {"gap_p50_ms": 100, "tcp_survives_every_run": True},
        "met": {"gap_p50": bool(fw["gap_ms"]["p50"] is not None
                                and fw["gap_ms"]["p50"] <= 100),
                "tcp": fw["tcp_survived"] == fw["runs"]},
        "runs_detail": {k: [h.as_dict() for h in v] for k, v in results.items()},
    }
