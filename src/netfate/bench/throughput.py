"""netfate bench throughput: iperf3 from a client to the internet host, on the plain path and
through a native firewall on the client's CPE LSI; the ratio between them."""

from __future__ import annotations

import contextlib
import json
import subprocess
from typing import Any

from netfate import catalogue, paths
from netfate.bench.harness import machine, testbed
from netfate.bench.stats import ratio
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


def run(seconds: int = 5, rounds: int = 2) -> dict[str, Any]:
    with testbed() as tb:
        bundle = catalogue.install(tb.store, "firewall")
        node_name, mac, access, uplink = tb.access("client1")
        node = tb.node(node_name)
        client = tb.host("client1").netns
        inet = tb.internet()
        ip = tb.topology.internet_address
        direct: list[float] = []
        through: list[float] = []
        direct_path = tb.open_path("client1", "bench:direct")
        info = node.deploy_nf("benchtp", "firewall", bundle.sha256, FW_CONFIG)
        rules = node.steering_rules("bench:tp", mac, access, uplink, [info])
        try:
            # Alternate the two paths so machine noise hits both alike.
            for _ in range(rounds):
                direct.append(_iperf(client, inet.netns, ip, seconds))
                tb.steer("client1", [info], tag="bench:tp")
                through.append(_iperf(client, inet.netns, ip, seconds))
                tb.unsteer(node_name, rules)
            counters = node.compute.status(info.instance_id).detail
        finally:
            with contextlib.suppress(Exception):
                tb.unsteer(node_name, rules + direct_path)
            node.remove_nf(info.instance_id)
    d = max(direct)
    t = max(through)
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
        "firewall_status": counters,
        "targets": {"firewall_gbps": 1.0, "ratio": 0.8},
        "machine": machine(),
    }
