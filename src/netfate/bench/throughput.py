"""netfate bench throughput: iperf3 from a client to the internet host, on the plain path and
through a native firewall on the client's CPE LSI; the ratio between them. Also the idle RTT
(ping, no other traffic) on both paths: what one NF adds (the Glasgow paper, Fig. 2a)."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from typing import Any

from netfate import catalogue, paths
from netfate.bench.harness import machine, testbed
from netfate.bench.stats import ratio, summary
from netfate.errors import DriverError
from netfate.proc import netns_argv
from netfate.supervisor import Supervised, probes

FW_CONFIG: dict[str, Any] = {
    "default_out": "allow",
    "rules": [
        {"action": "deny", "direction": "out", "proto": "tcp", "dport": 23},
        {"action": "allow", "direction": "out", "proto": "tcp", "dport": 5201},
    ],
}


def _iperf(client_ns: str, server_ns: str, server_ip: str, seconds: int) -> float:
    server = Supervised("iperf3-server", ["iperf3", "-s", "-1", "-B", server_ip, "-p", "5201",
                                          "--forceflush"],
                        paths.run_dir() / "bench", programs=("iperf3",), netns=server_ns,
                        append_log=False)
    server.start(ready=probes.log_line(server.log, "Server listening"), timeout=5)
    try:
        cp = subprocess.run(  # noqa: S603 - argument list
            netns_argv(client_ns, ["iperf3", "-c", server_ip, "-p", "5201", "-t", str(seconds),
                                   "-J"]),
            capture_output=True, timeout=seconds + 20, check=False,
        )
        try:
            data = json.loads(cp.stdout)
            return float(data["end"]["sum_received"]["bits_per_second"])
        except (ValueError, KeyError) as exc:
            raise DriverError(f"iperf3 gave no result: {cp.stdout[-500:]!r}") from exc
    finally:
        server.stop(grace=0.0)


_RTT = re.compile(rb"time=([0-9.]+) ms")


def _rtts(client_ns: str, server_ip: str, count: int) -> list[float]:
    """Idle round trips (ms) of `count` pings, 20 ms apart, the first (ARP, flow setup) not
    counted."""
    cp = subprocess.run(  # noqa: S603 - argument list
        netns_argv(client_ns, ["ping", "-n", "-c", str(count + 1), "-i", "0.02", "-W", "1",
                               server_ip]),
        capture_output=True, timeout=count + 10, check=False,
    )
    return [float(m) for m in _RTT.findall(cp.stdout)][1:]


def run(seconds: int = 5, rounds: int = 2, pings: int = 50) -> dict[str, Any]:
    with testbed() as tb:
        bundle = catalogue.install(tb.store, "firewall")
        node_name, mac, access, uplink = tb.access("client1")
        node = tb.node(node_name)
        client = tb.host("client1").netns
        inet = tb.internet()
        ip = tb.topology.internet_address
        direct: list[float] = []
        through: list[float] = []
        rtt_direct: list[float] = []
        rtt_through: list[float] = []
        direct_path = tb.open_path("client1", "bench:direct")
        info = node.deploy_nf("benchtp", "firewall", bundle.sha256, FW_CONFIG)
        rules = node.steering_rules("bench:tp", mac, access, uplink, [info])
        try:
            # Alternate the two paths so machine noise hits both alike.
            for _ in range(rounds):
                rtt_direct += _rtts(client, ip, pings)
                direct.append(_iperf(client, inet.netns, ip, seconds))
                tb.steer("client1", [info], tag="bench:tp")
                rtt_through += _rtts(client, ip, pings)
                through.append(_iperf(client, inet.netns, ip, seconds))
                tb.unsteer(node_name, rules)
            counters = node.compute.status(info.instance_id).detail
        finally:
            with contextlib.suppress(Exception):
                tb.unsteer(node_name, rules + direct_path)
            node.remove_nf(info.instance_id)
    d = max(direct)
    t = max(through)
    rd = summary(rtt_direct, digits=3)
    rt = summary(rtt_through, digits=3)
    added = (rt.get("p50") or 0) - (rd.get("p50") or 0) if rd["n"] and rt["n"] else None
    return {
        "benchmark": "throughput",
        "seconds": seconds,
        "rounds": rounds,
        "mtu": tb.topology.mtu,
        "direct_gbps": round(d / 1e9, 3),
        "firewall_gbps": round(t / 1e9, 3),
        "ratio": ratio(t, d, digits=3),
        "all_direct_gbps": [round(x / 1e9, 3) for x in direct],
        "all_firewall_gbps": [round(x / 1e9, 3) for x in through],
        "idle_rtt_ms": {"plain": rd, "firewall": rt,
                        "added_p50": None if added is None else round(added, 3),
                        "ratio_p50": ratio(rt.get("p50"), rd.get("p50"))},
        "firewall_status": counters,
        "targets": {"firewall_gbps": 1.0, "ratio": 0.8, "idle_rtt_ratio": 2.0},
        "machine": machine(),
    }
