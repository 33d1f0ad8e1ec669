"""`netfate demo`: the main job. Until the roaming case study lands, it is the testbed, a
personal firewall for client1 on cpe1, and real traffic through it, allowed and denied."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from netfate import catalogue
from netfate.errors import NetfateError
from netfate.proc import netns_argv
from netfate.testbed import lifecycle
from netfate.testbed.context import Testbed
from netfate.testbed.topology import load_topology

FIREWALL = {
    "default_out": "allow",
    "default_in": "deny",
    "rules": [
        {"action": "deny", "direction": "out", "proto": "tcp", "dport": 23},
        {"action": "allow", "direction": "out", "proto": "tcp", "dport": 5201},
    ],
}


def _tcp_connects(ns: str, ip: str, port: int, timeout: float = 1.0) -> bool:
    code = (
        "import socket,sys\n"
        "s=socket.socket(); s.settimeout(float(sys.argv[3]))\n"
        "try:\n s.connect((sys.argv[1], int(sys.argv[2]))); print('ok')\n"
        "except OSError as e: print(e)\n"
    )
    cp = subprocess.run(  # noqa: S603 - argument list, data as argv
        netns_argv(ns, ["python3", "-c", code, ip, str(port), str(timeout)]),
        capture_output=True, text=True, timeout=timeout + 5, check=False,
    )
    return cp.stdout.strip() == "ok"


def run_demo(keep: bool = False, json_out: bool = False) -> dict[str, Any]:
    console = Console(stderr=True, quiet=json_out)
    timeline: list[dict[str, Any]] = []
    t0 = time.time()

    def mark(phase: str, **kw: Any) -> None:
        timeline.append({"phase": phase, "t": round(time.time() - t0, 3), **kw})
        console.print(f"[cyan]{time.time() - t0:6.2f}s[/] {phase}")

    summary: dict[str, Any] = {"timeline": timeline}
    listeners: list[subprocess.Popen[bytes]] = []
    try:
        with console.status("testbed up"):
            lifecycle.up(load_topology())
        mark("testbed up")
        with Testbed.attach() as tb:
            bundle = catalogue.install(tb.store, "firewall")
            node_name, mac, access, uplink = tb.access("client1")
            node = tb.node(node_name)
            t = time.perf_counter()
            nf = node.deploy_nf("user1", "firewall", bundle.sha256, FIREWALL)
            node.steer("user:user1", mac, access, uplink, [nf])
            mark("firewall for user1 on cpe1", ms=round((time.perf_counter() - t) * 1000, 1))
            inet = tb.internet()
            ip = tb.topology.internet_address
            client = tb.host("client1").netns
            for port in (5201, 23):
                listeners.append(subprocess.Popen(  # noqa: S603 - argument list
                    netns_argv(inet.netns, ["python3", "-c",
                        "import socket,sys,time\n"
                        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
                        "s.bind((sys.argv[1],int(sys.argv[2]))); s.listen(8); time.sleep(60)\n",
                        ip, str(port)]),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ))
            time.sleep(0.5)
            allowed = _tcp_connects(client, ip, 5201)
            denied = not _tcp_connects(client, ip, 23)
            mark("traffic", tcp_5201_allowed=allowed, tcp_23_blocked=denied)
            status = node.compute.status(nf.instance_id).detail
            summary.update({
                "nf": nf.instance_id, "node": node_name,
                "tcp_5201_allowed": allowed, "tcp_23_blocked": denied,
                "firewall_status": status,
            })
            table = Table("check", "result")
            table.add_row("TCP 5201 (allowed by user1's rule)", "passed" if allowed else "FAILED")
            table.add_row("TCP 23 (denied by user1's rule)", "blocked" if denied else "FAILED")
            console.print(table)
    except NetfateError as exc:
        summary["error"] = str(exc)
        console.print(f"[red]error:[/] {exc}")
    finally:
        for p in listeners:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait()
        if not keep:
            lifecycle.down()
            mark("testbed down")
    summary["ok"] = bool(summary.get("tcp_5201_allowed") and summary.get("tcp_23_blocked"))
    if json_out:
        print(json.dumps(summary, indent=2, default=str))
    return summary
