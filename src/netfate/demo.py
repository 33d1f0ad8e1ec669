"""`netfate demo`: the main job. Until the roaming case study lands, it is the whole stack on
the emulated edge: two users log in at their CPEs through the orchestrator, the engine places
a personal firewall for each on its access node, real traffic crosses it (allowed, denied,
and a long-lived TCP connection), and an idle user's firewall is released."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from netfate.drivers import netns
from netfate.errors import NetfateError
from netfate.testbed import lifecycle
from netfate.testbed.context import Testbed
from netfate.testbed.topology import load_topology

INET_PORTS = (5201, 2323)
USERS: dict[str, tuple[str, list[dict[str, Any]]]] = {  # user: (host, firewall rules)
    "user1": ("client1", [{"action": "deny", "proto": "tcp", "dport": 2323}]),
    "user2": ("client2", []),
}


class _Echo:
    """A TCP echo service on the internet host, in a thread of this process."""

    def __init__(self, ns: str, ip: str, port: int) -> None:
        import threading

        self.sock = netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(16)
        self.sock.settimeout(0.5)
        self.stopped = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import threading

        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def close(self) -> None:
        self.stopped = True
        self.sock.close()


def _echoes(s: socket.socket, payload: bytes) -> bool:
    try:
        s.sendall(payload)
        return s.recv(len(payload) + 16) == payload
    except OSError:
        return False


def run_demo(keep: bool = False, json_out: bool = False) -> dict[str, Any]:
    console = Console(stderr=True, quiet=json_out)
    t0 = time.time()
    timeline: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"timeline": timeline, "checks": {}}

    def mark(phase: str, **kw: Any) -> None:
        timeline.append({"phase": phase, "t": round(time.time() - t0, 3), **kw})
        console.print(f"[cyan]{time.time() - t0:6.2f}s[/] {phase}"
                      + (f"  [dim]{json.dumps(kw)}[/]" if kw else ""))

    def check(name: str, ok: bool) -> None:
        summary["checks"][name] = ok
        console.print(f"    {'[green]ok[/]' if ok else '[red]FAILED[/]'}  {name}")

    servers: list[_Echo] = []
    api = lifecycle.api_url() + "/api/v1"
    try:
        with console.status("testbed up: switches, hosts, orchestrator, agents"):
            lifecycle.up(load_topology())
        mark("testbed up")
        with Testbed.attach() as tb, httpx.Client(base_url=api, timeout=30) as http:
            inet, ip = tb.internet(), tb.topology.internet_address
            servers += [_Echo(inet.netns, ip, p) for p in INET_PORTS]
            for user, (_, rules) in USERS.items():
                r = http.post("/users", json={
                    "name": user, "password": f"{user}-secret", "required_nfs": ["firewall"],
                    "nf_config": {"firewall": {"rules": rules}}})
                if r.status_code not in (201, 409):
                    raise NetfateError(f"creating {user}: {r.text}")
            for user, (host, _) in USERS.items():
                node, mac, _, _ = tb.access(host)
                h = tb.host(host)
                # the client speaks, so its CPE learns its port
                netns.tcp_connect(h.netns, ip, 9, timeout=0.2)
                t = time.perf_counter()
                out = http.post(f"/users/{user}/associate", json={
                    "node": node, "mac": mac, "ip": tb.topology.host_address(h)}).json()
                ops = _wait(http, out["vnf_lcm_op_occs"])
                mark(f"{user} logged in at {node}", firewall_ms=round(
                    (time.perf_counter() - t) * 1000), ops=[o["operation_state"] for o in ops])
            time.sleep(0.5)
            client1 = tb.host("client1").netns
            long_lived = netns.tcp_connect(client1, ip, 5201)
            check("user1: TCP 5201 allowed through the firewall",
                  long_lived is not None and _echoes(long_lived, b"hello"))
            check("user1: TCP 2323 denied by user1's rule", netns.tcp_connect(client1, ip, 2323,
                                                                    0.7) is None)
            other = netns.tcp_connect(tb.host("client2").netns, ip, 2323)
            check("user2: TCP 2323 allowed (user1's rules are not user2's)", other is not None)
            if other:
                other.close()
            mark("traffic checked")
            nfs = http.get("/vnf_instances").json()
            summary["nfs_per_node"] = {n["node_name"]: n["id"] for n in nfs}
            table = Table("NF", "node", "owner", "state")
            for n in nfs:
                table.add_row(n["id"], n["node_name"], n["owner"], n["actual_state"])
            console.print(table)
            check("user1's long-lived connection still up",
                  long_lived is not None and _echoes(long_lived, b"still here"))
            if long_lived:
                long_lived.close()
            out = http.post("/users/user1/idle").json()
            _wait(http, out["vnf_lcm_op_occs"])
            left = [n["id"] for n in http.get("/vnf_instances").json() if n["owner"] == "user1"]
            check("user1 idle: firewall released", not left and not any(
                i.owner == "user1" for i in tb.node("cpe1").compute.list_nfs()))
            mark("user1 idle, released")
    except (NetfateError, httpx.HTTPError) as exc:
        summary["error"] = str(exc)
        console.print(f"[red]error:[/] {exc}")
    finally:
        for s in servers:
            s.close()
        if not keep:
            lifecycle.down()
            mark("testbed down")
    summary["ok"] = bool(summary["checks"]) and all(summary["checks"].values()) and \
        "error" not in summary
    if json_out:
        print(json.dumps(summary, indent=2, default=str))
    else:
        console.print("[green]demo passed[/]" if summary["ok"] else "[red]demo failed[/]")
    return summary


def _wait(http: httpx.Client, op_ids: list[str], timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        ops = [http.get(f"/vnf_lcm_op_occs/{o}").json() for o in op_ids]
        if all(o["operation_state"] not in ("PROCESSING", "ROLLING_BACK") for o in ops):
            return ops
        if time.monotonic() > deadline:
            raise NetfateError(f"operations did not finish: {ops}")
        time.sleep(0.1)
