"""netfate bench chain (issue 11): RTT and throughput from a client to the internet host for a
user whose firewall runs on their CPE, on the PE, and in the DC, against the plain path, in
the same run; then the time to serve users again after the DC their chain crosses fails
(`failover`, bench/chain_failover.py).

On the data-plane testbed (no controller): the firewall is a native NF on the chosen node, and
the user's path is written as OpenFlow flows in the shape the controller's pipeline gives a
Remote step and its Transit (controller/flows.py): into the VXLAN tunnel with an OUT key, across
the NF, back with a BACK key, both ways. The flows carry a cookie of their own, above the
testbed's L2 rule, and are removed after each placement.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Callable
from typing import Any

from netfate import catalogue, paths, proc
from netfate.bench.harness import machine, testbed
from netfate.bench.throughput import FW_CONFIG, _iperf
from netfate.controller import pipeline as pl
from netfate.drivers.ovs import OvsServer
from netfate.errors import DriverError
from netfate.proc import netns_argv
from netfate.testbed.context import Testbed
from netfate.testbed.settings import TestbedSettings
from netfate.testbed.underlay import tunnel_port

COOKIE = 0x4E42_0000_0000_C4A1  # 'NB': a bench's own flows
PRIORITY = 60000
USER = "bench-chain"


def _ofctl(server: OvsServer, *args: str, flows: str | None = None) -> None:
    cp = proc.run(["ovs-ofctl", "-O", "OpenFlow13", *args], env=server.env, check=False,
             input=flows.encode() if flows is not None else None)
    if cp.returncode != 0:
        raise DriverError(f"ovs-ofctl {args[0]}: {cp.stderr.decode().strip()}")


def _flow(match: str, actions: str) -> str:
    return f"cookie={COOKIE:#x},priority={PRIORITY},{match},actions={actions}"


def path_flows(mac: str, access: str, uplink: str, lan: str, wan: str,
               tunnels: tuple[str, str] | None) -> tuple[list[str], list[str]]:
    """The flows at the access node and (with `tunnels`: (access side, far side)) at the NF's
    node, for a client whose firewall's ports are lan/wan. Pure."""
    if tunnels is None:
        return [_flow(f"in_port={access},ip,dl_src={mac}", f"output:{lan}"),
                _flow(f"in_port={wan},ip,dl_src={mac}", f"output:{uplink}"),
                _flow(f"in_port={uplink},ip,dl_dst={mac}", f"output:{wan}"),
                _flow(f"in_port={lan},ip,dl_dst={mac}", f"output:{access}")], []
    here, there = tunnels
    k = {leg: pl.tunnel_key(USER, 0, leg)
         for leg in (pl.UP_OUT, pl.UP_BACK, pl.DOWN_OUT, pl.DOWN_BACK)}
    near = [
        _flow(f"in_port={access},ip,dl_src={mac}",
              f"set_field:{k[pl.UP_OUT]}->tun_id,output:{here}"),
        _flow(f"in_port={here},tun_id={k[pl.UP_BACK]},ip", f"output:{uplink}"),
        _flow(f"in_port={uplink},ip,dl_dst={mac}",
              f"set_field:{k[pl.DOWN_OUT]}->tun_id,output:{here}"),
        _flow(f"in_port={here},tun_id={k[pl.DOWN_BACK]},ip", f"output:{access}"),
    ]
    far = [
        _flow(f"in_port={there},tun_id={k[pl.UP_OUT]},ip", f"output:{lan}"),
        _flow(f"in_port={wan},ip,dl_src={mac}",
              f"set_field:{k[pl.UP_BACK]}->tun_id,output:{there}"),
        _flow(f"in_port={there},tun_id={k[pl.DOWN_OUT]},ip", f"output:{wan}"),
        _flow(f"in_port={lan},ip,dl_dst={mac}",
              f"set_field:{k[pl.DOWN_BACK]}->tun_id,output:{there}"),
    ]
    return near, far


def _rtt_ms(client_ns: str, ip: str, count: int) -> float:
    argv = netns_argv(client_ns, ["ping", "-q", "-c", str(count), "-i", "0.02", "-W", "1", ip])
    cp = subprocess.run(argv, capture_output=True, text=True,  # noqa: S603 - argument list
                        timeout=count + 10, check=False)
    m = re.search(r"= [\d.]+/([\d.]+)/", cp.stdout)
    if m is None:
        raise DriverError(f"ping gave no RTT: {cp.stdout[-300:]!r}")
    return float(m.group(1))


def _measure(tb: Testbed, client: str, ip: str, seconds: int, pings: int) -> dict[str, float]:
    ns = tb.host(client).netns
    return {"rtt_ms": round(_rtt_ms(ns, ip, pings), 3),
            "gbps": round(_iperf(ns, tb.internet().netns, ip, seconds) / 1e9, 3)}


def run(seconds: int = 2, pings: int = 50, client: str = "client1", failover_runs: int = 1,
        say: Callable[[str], None] = lambda _: None,
        testbed_settings: TestbedSettings | None = None) -> dict[str, Any]:
    """One measurement of each path: plain, firewall on the CPE, on its PE, in the DC; then
    (`failover_runs` > 0) the time to re-serve users after the DC their chain crosses
    fails, on the whole stack (bench/chain_failover.py: its own topology, brought up and
    taken down after the paths' testbed)."""
    out = _paths(seconds, pings, client)
    if failover_runs > 0:
        from netfate.bench import chain_failover

        say(f"paths measured; {failover_runs} DC failure(s) next")
        out["failover"] = chain_failover.run(failover_runs, say, testbed_settings)
    return out


def _paths(seconds: int, pings: int, client: str) -> dict[str, Any]:
    server = OvsServer(paths.ovs_dir())
    with testbed() as tb:
        bundle = catalogue.install(tb.store, "firewall")
        cpe, mac, access, uplink = tb.access(client)
        spec = tb.topology.node(cpe)
        where = {"local": cpe, "pe": spec.uplink,
                 "dc": next((n.name for n in tb.topology.nodes if n.role == "dc"), None)}
        ip = tb.topology.internet_address
        out: dict[str, Any] = {"plain": _measure(tb, client, ip, seconds, pings)}
        for label, node_name in where.items():
            if node_name is None:
                out[label] = None
                continue
            node = tb.node(node_name)
            info = node.deploy_nf("benchchain", "firewall", bundle.sha256, FW_CONFIG)
            lan, wan = info.ports[0].host_if, info.ports[-1].host_if
            remote = None if node_name == cpe else (tunnel_port(cpe, node_name),
                                                    tunnel_port(node_name, cpe))
            near, far = path_flows(mac, access, uplink, lan, wan, remote)
            try:
                _ofctl(server, "add-flows", spec.lsi, "-", flows="\n".join(near))
                if far:
                    _ofctl(server, "add-flows", node.lsi, "-", flows="\n".join(far))
                tb.network.settle()
                out[label] = {"node": node_name, **_measure(tb, client, ip, seconds, pings)}
            finally:
                for lsi in {spec.lsi, node.lsi}:
                    with contextlib.suppress(DriverError):
                        _ofctl(server, "del-flows", lsi, f"cookie={COOKIE:#x}/-1")
                node.remove_nf(info.instance_id)
    plain = out["plain"]
    return {
        "benchmark": "chain",
        "seconds": seconds,
        "pings": pings,
        "mtu": tb.topology.mtu,
        "paths": out,
        "vs_plain": {k: {"rtt_x": round(v["rtt_ms"] / plain["rtt_ms"], 2),
                         "throughput_ratio": round(v["gbps"] / plain["gbps"], 3)}
                     for k, v in out.items() if k != "plain" and v},
        "machine": machine(),
    }
