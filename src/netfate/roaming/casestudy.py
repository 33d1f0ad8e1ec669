"""`netfate demo`: the NetFATE case study end to end (the paper's section IV, Fig. 5).

1. testbed up (switches, SDN controller, orchestrator with FreeRADIUS, agents, each CPE's
   DHCP and captive portal);
2. user1 logs in at cpe1 and user2 at cpe2, through DHCP and the captive portal;
3. each gets a personal firewall on their CPE;
4. user1 starts a long-lived TCP stream and a UDP probe stream to the internet host;
5. user1 moves to cpe2: fast re-authentication, the firewall migrates with its state
   (make before break, the old one serving until the new one is steered);
6. the TCP stream survives, the gap in the probe stream is measured, denied stays denied;
7. user1 goes idle and the firewall is released;
8. testbed down (unless --keep).
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from netfate.api_auth import BearerAuth
from netfate.errors import NetfateError
from netfate.roaming.handover import handover
from netfate.roaming.probes import EchoServer, TcpStream, UdpProbe, reachable
from netfate.roaming.session import nfs_per_node, portal_login, running_at, wait_for
from netfate.testbed import lifecycle
from netfate.testbed.settings import TestbedSettings
from netfate.testbed.topology import Topology, load_topology

ALLOWED, DENIED = 5201, 2323
USERS: dict[str, tuple[str, list[dict[str, Any]]]] = {  # user: (host, firewall rules)
    "user1": ("client1", [{"action": "deny", "proto": "tcp", "dport": DENIED}]),
    "user2": ("client2", []),
}
DEMO_IDLE_S = 5


def run_demo(keep: bool = False, json_out: bool = False,
             testbed: TestbedSettings | None = None) -> dict[str, Any]:
    """The case study on the testbed (brought up with ``testbed``'s settings, its idle
    timeout set to DEMO_IDLE_S so the release shows within the demo)."""
    tb = (testbed or TestbedSettings()).model_copy(update={"idle_timeout": DEMO_IDLE_S})
    console = Console(stderr=True, quiet=json_out)
    t0 = time.time()
    phases: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"phases": phases, "checks": {}}
    api = httpx.Client(base_url=lifecycle.api_url(tb) + "/api/v1", timeout=30,
                     auth=BearerAuth())

    def phase(name: str, **kw: Any) -> None:
        nfs = {}
        with_api = not name.endswith("testbed down")
        if with_api:
            try:
                nfs = nfs_per_node(api)
            except httpx.HTTPError:
                nfs = {}
        phases.append({"phase": name, "ts": time.time(), "t": round(time.time() - t0, 3),
                       "nfs_per_node": nfs, **kw})
        console.print(f"[cyan]{time.time() - t0:6.2f}s[/] [bold]{name}[/]"
                      + (f"  [dim]{json.dumps(kw)}[/]" if kw else ""))

    def check(name: str, ok: bool) -> None:
        summary["checks"][name] = ok
        console.print(f"    {'[green]ok[/]' if ok else '[red]FAILED[/]'}  {name}")

    servers: list[EchoServer] = []
    probe: UdpProbe | None = None
    tcp: TcpStream | None = None
    try:
        topo = load_topology(tb.topology)
        with console.status("testbed up: switches, controller, orchestrator, RADIUS, agents, "
                            "DHCP and portals"):
            lifecycle.down()
            lifecycle.up(topo, settings=tb)
        phase("1. testbed up")
        inet_ns, inet = _inet(topo)
        servers += [EchoServer(inet_ns, inet, p) for p in (ALLOWED, DENIED)]
        for user, (_, rules) in USERS.items():
            r = api.post("/users", json={
                "name": user, "password": f"{user}-secret", "required_nfs": ["firewall"],
                "nf_config": {"firewall": {"rules": rules}}})
            if r.status_code not in (201, 409):
                raise NetfateError(f"creating {user}: {r.text}")
        logins = {}
        for user, (host, _) in USERS.items():
            lg = portal_login(topo, host, user, f"{user}-secret")
            wait_for(lambda u=user: bool(running_at(api, u)), 30,  # type: ignore[misc]
                     f"{user}'s firewall")
            logins[user] = lg
            phase(f"2-3. {user} logged in at {lg.node} (DHCP + captive portal + RADIUS); "
                  "firewall placed", ip=lg.ip, portal_ms=lg.portal_ms)
        c1 = topo.host("client1").netns
        wait_for(lambda: reachable(c1, inet, ALLOWED), 10, "user1's steering")
        check("user1: allowed port passes through the firewall", reachable(c1, inet, ALLOWED))
        check("user1: denied port is dropped", not reachable(c1, inet, DENIED))
        c2 = topo.host("client2").netns
        wait_for(lambda: reachable(c2, inet, DENIED), 10, "user2's steering")
        check("user2: user1's rules do not apply to user2", reachable(c2, inet, DENIED))

        tcp = TcpStream(c1, inet, ALLOWED).start()
        probe = UdpProbe(c1, inet_ns, inet).start()
        time.sleep(1.0)
        phase("4. user1: long-lived TCP stream and 1 kHz UDP probe stream running",
              tcp_echoes=tcp.echoed, probes=len(probe.arrivals))

        h = handover(api, "client1", "user1", "cpe2", probe, tcp)
        summary["handover"] = h.as_dict()
        phase("5. user1 moved to cpe2; the firewall migrated with its state",
              gap_ms=h.gap_ms, from_association_ms=h.from_association_ms,
              migrated_in_ms=h.migrated_in_ms)
        time.sleep(0.5)
        check("the TCP stream survived the move", tcp.alive)
        check("denied traffic stays denied after the move", not reachable(c1, inet, DENIED))
        check("the firewall runs at cpe2 only", set(running_at(api, "user1").values())
              == {"cpe2"})
        phase("6. TCP survived; probe gap measured", tcp_echoes=tcp.echoed,
              tcp_survived=tcp.alive, gap_ms=h.gap_ms)
        tcp.stop()
        probe.stop()
        tcp = probe = None
        t_quiet = time.time()
        with console.status(f"user1 quiet: released after {DEMO_IDLE_S} s without packets"):
            wait_for(lambda: not running_at(api, "user1"), DEMO_IDLE_S + 30,
                     "user1's firewall to be released", step=0.1)
        check("user1 idle: firewall released", not running_at(api, "user1"))
        phase("7. user1 idle: firewall released",
              released_after_s=round(time.time() - t_quiet, 2))
        summary["logins"] = {u: vars(lg) for u, lg in logins.items()}
        _table(console, summary)
    except (NetfateError, httpx.HTTPError, OSError) as exc:
        summary["error"] = str(exc)
        console.print(f"[red]error:[/] {exc}")
    finally:
        for x in (tcp, probe):
            if x is not None:
                x.stop()
        for s in servers:
            s.close()
        api.close()
        if not keep:
            lifecycle.down()
            phase("8. testbed down")
    summary["ok"] = bool(summary["checks"]) and all(summary["checks"].values()) and \
        "error" not in summary
    if json_out:
        print(json.dumps(summary, indent=2, default=str))
    else:
        console.print("[green]demo passed[/]" if summary["ok"] else "[red]demo failed[/]")
    return summary


def _inet(topo: Topology) -> tuple[str, str]:
    for h in topo.hosts:
        if h.role == "internet":
            return h.netns, topo.internet_address
    raise NetfateError("the topology has no internet host")


def _table(console: Console, summary: dict[str, Any]) -> None:
    h = summary.get("handover") or {}
    t = Table("handover", "value")
    for k in ("gap_ms", "from_association_ms", "tcp_survived", "move_ms", "migrated_in_ms"):
        t.add_row(k, str(h.get(k)))
    for k, v in (h.get("breakdown") or {}).items():
        t.add_row(k, json.dumps(v))
    console.print(t)
