"""The rest of the native catalogue, through the driver, with real traffic on the testbed."""

from __future__ import annotations

import json
import socket
import subprocess
import time

from netfate import catalogue
from netfate.drivers import netns
from netfate.proc import netns_argv
from netfate.testbed.context import Testbed

INET = "10.255.0.1"


def deploy(tb: Testbed, nf: str, cfg: dict[str, object], host: str = "client1") -> str:
    sha = catalogue.install(tb.store, nf).sha256
    node_name, mac, access, uplink = tb.access(host)
    node = tb.node(node_name)
    info = node.deploy_nf("user1", nf, sha, cfg)
    node.steer("user:user1", mac, access, uplink, [info])
    return info.instance_id


def iperf_mbps(seconds: int = 3) -> float:
    server = subprocess.Popen(netns_argv("fate-h-inet", ["iperf3", "-s", "-1", "-B", INET]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        cp = subprocess.run(netns_argv("fate-h-client1", ["iperf3", "-c", INET, "-t",
                                                          str(seconds), "-J"]),
                            capture_output=True, timeout=seconds + 20, check=True)
        return float(json.loads(cp.stdout)["end"]["sum_received"]["bits_per_second"]) / 1e6
    finally:
        server.kill()
        server.wait()


def test_rate_limiter_shapes_to_its_rate_and_updates_live(tb: Testbed) -> None:
    iid = deploy(tb, "rate-limiter", {"up_kbit": 20_000})
    assert 15 <= iperf_mbps() <= 21
    tb.node("cpe1").compute.update_nf(iid, {"up_kbit": 5_000})
    assert 3.5 <= iperf_mbps() <= 5.3
    shaper = tb.node("cpe1").compute.status(iid).detail
    assert json.dumps(shaper).count("tbf") >= 1


def _notes(tb: Testbed) -> list[dict[str, object]]:
    return tb.node("cpe1").compute.queue.drain()  # type: ignore[attr-defined, no-any-return]


def test_packet_inspector_raises_port_scan_and_flood(tb: Testbed) -> None:
    _notes(tb)
    iid = deploy(tb, "packet-inspector", {"scan_ports": 20, "window_s": 5, "flood_pps": 500})
    time.sleep(0.5)
    # a port scan: SYNs to 60 ports (closed ports answer RST; that is enough)
    for port in range(20000, 20060):
        s = netns.socket_in("fate-h-client1", socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(0.05)
        try:
            s.connect((INET, port))
        except OSError:
            pass
        s.close()
    # a UDP flood: bursts of 3000 datagrams, each in well under a second, until it is seen
    # (on a loaded machine the inspector's capture socket may drop part of one burst: the
    # kernel counts those drops, stats["kernel"], and the detector sees fewer than sent)
    u = netns.socket_in("fate-h-client1", socket.AF_INET, socket.SOCK_DGRAM)
    deadline = time.monotonic() + 10
    seen: dict[str, dict[str, object]] = {}
    try:
        while time.monotonic() < deadline and not {"port-scan", "flood"} <= set(seen):
            if "flood" not in seen:
                for _ in range(3000):
                    u.sendto(b"x" * 64, (INET, 9))
            for _ in range(5):
                for n in _notes(tb):
                    seen[str(n["type"])] = n
                time.sleep(0.2)
    finally:
        u.close()
    assert {"port-scan", "flood"} <= set(seen), seen
    assert seen["port-scan"]["source"] == "10.90.1.1"
    assert seen["port-scan"]["nf_id"] == iid
    stats = tb.node("cpe1").compute.status(iid).detail
    assert stats["running"] is True


def test_troubleshooter_ping_and_bounded_capture(tb: Testbed) -> None:
    cfg = {"address": "10.90.200.1/16", "gateway": "10.90.0.1"}
    iid = deploy(tb, "troubleshooter", cfg)
    compute = tb.node("cpe1").compute
    compute.update_nf(iid, {**cfg, "request": {"id": "p1", "tool": "ping", "target": INET,
                                               "count": 3}})
    compute.update_nf(iid, {**cfg, "request": {"id": "c1", "tool": "capture", "seconds": 2,
                                        "packets": 50, "interface": "lan", "filter": "icmp"}})
    subprocess.run(netns_argv("fate-h-client1", ["ping", "-c", "3", "-i", "0.2", INET]),
                   capture_output=True, check=False)
    deadline = time.monotonic() + 10
    results: dict[str, dict[str, object]] = {}
    while time.monotonic() < deadline and len(results) < 2:
        results = {r["id"]: r for r in compute.status(iid).detail["results"]}
        time.sleep(0.3)
    assert results["p1"]["ok"] is True, results
    assert int(str(results["c1"]["packets_captured"])) >= 2, results
