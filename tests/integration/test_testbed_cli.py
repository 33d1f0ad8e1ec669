"""The testbed by hand (issue #12): `netfate testbed exec|login|move|up|status` as an
operator runs them, on one testbed with its services shared by the module. `up` after a move
and after a kill -9 converges; a move never waits on an OVSDB reconnect."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from netfate import naming
from netfate.api_auth import BearerAuth
from netfate.proc import netns_argv
from netfate.roaming.probes import EchoServer, reachable
from netfate.roaming.session import ensure_user, running_at, wait_for
from netfate.supervisor import read_record
from netfate.testbed import host_link, lifecycle, processes
from netfate.testbed.move import move
from netfate.testbed.settings import TestbedSettings
from netfate.testbed.topology import load_topology

INET, PORT = "10.255.0.1", 5201
IDLE = 600  # nobody is released mid-module
USER, PASSWORD = "hand1", "hand1-secret"


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`netfate ARGS` as a person types it (not a terminal: no progress bars)."""
    cp = subprocess.run([sys.executable, "-m", "netfate.cli.main", *args],
                        capture_output=True, text=True, timeout=180, check=False)
    if check and cp.returncode != 0:
        raise AssertionError(f"netfate {' '.join(args)} exited {cp.returncode}:\n"
                             f"{cp.stdout}\n{cp.stderr}")
    return cp


def served(client: str = "client1") -> bool:
    return reachable(f"fate-h-{client}", INET, PORT)


@pytest.fixture(scope="module")
def stack(testbed_up: None) -> Iterator[httpx.Client]:
    lifecycle.down()
    api = httpx.Client(base_url=lifecycle.api_url() + "/api/v1", timeout=30,
                      auth=BearerAuth())
    server = None
    try:
        lifecycle.up(load_topology(), settings=TestbedSettings(idle_timeout=IDLE))
        server = EchoServer("fate-h-inet", INET, PORT)
        ensure_user(api, USER, PASSWORD, ["firewall"])
        yield api
    finally:
        if server is not None:
            server.close()
        api.close()
        lifecycle.down()
        lifecycle.up(load_topology(), services=False)


def test_exec_runs_on_the_host_and_passes_exit_codes(stack: httpx.Client) -> None:
    cp = cli("testbed", "exec", "client1", "--", "ip", "-4", "-o", "addr", "show", "eth0")
    assert "eth0" in cp.stdout and "inet " in cp.stdout
    assert cli("testbed", "exec", "client1", "--", "sh", "-c", "exit 3",
               check=False).returncode == 3
    assert cli("testbed", "exec", "inet", "--", "true").returncode == 0
    bad = cli("testbed", "exec", "h9", "--", "true", check=False)
    assert bad.returncode == 1
    assert "unknown host 'h9'" in bad.stderr and "client1" in bad.stderr


def test_login_prints_success_and_the_user_is_served(stack: httpx.Client) -> None:
    cp = cli("testbed", "login", "client1", USER, "--password", PASSWORD, "--json")
    out = json.loads(cp.stdout)
    assert out["ok"] is True and out["node"] == "cpe1" and out["user"] == USER, out
    wait_for(lambda: running_at(stack, USER) == {f"cpe1-{USER}-firewall": "cpe1"}, 30,
             f"{USER}'s firewall at cpe1")
    wait_for(served, 10, f"{USER} served at cpe1")
    refused = cli("testbed", "login", "client2", USER, "--password", "wrong-pw",
                  "--json", check=False)
    assert refused.returncode == 1 and json.loads(refused.stdout)["ok"] is False


def test_moves_in_one_process_never_wait_on_an_ovsdb_reconnect(
        stack: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """ovsdbapp shares a connection per Backend class: each later OvsNetwork restarted the
    first one's through its IDL's reconnect back-off (1, 2, 4, 8 s): from the third move of a
    `bench handover` on, every move waited 8 s. Each move now has a connection of its own,
    and returns once the new port is on the switch (its steps add up to the move)."""
    from ovs.db import idl

    from netfate import paths
    from netfate.drivers.ovs import OvsNetwork, OvsServer

    reconnects: list[object] = []
    real_reconnect = idl.Idl.force_reconnect

    def force_reconnect(self: Any) -> None:
        reconnects.append(self)
        real_reconnect(self)
    monkeypatch.setattr(idl.Idl, "force_reconnect", force_reconnect)
    seen: list[Any] = []  # kept alive, so no two have the same id()
    real_api = OvsNetwork.api.fget  # type: ignore[attr-defined]

    def api(self: OvsNetwork) -> Any:
        a = real_api(self)
        if all(c is not a.ovsdb_connection for c in seen):
            seen.append(a.ovsdb_connection)
        return a
    monkeypatch.setattr(OvsNetwork, "api", property(api))
    for node in ("cpe1", "cpe2", "cpe1", "cpe2"):  # client2 starts on cpe2
        m = move("client2", node)
        assert m["moved"] and m["node"] == node
        assert sum(m["steps_ms"].values()) <= m["seconds"] * 1000 + 1
        net = OvsNetwork(OvsServer(paths.ovs_dir()))
        try:  # associated: the new port is on the new CPE's switch when move returns
            assert naming.ifname(node, "client2") in net.list_ports(naming.lsi(node))
        finally:
            net.close()
    assert reconnects == []
    assert len(seen) == 8, "each OvsNetwork (4 moves, 4 checks) has its own connection"


def test_a_move_keeps_the_mac_the_client_has_and_status_shows_what_it_holds(
        stack: httpx.Client) -> None:
    """A client that changed its MAC (as a device that randomises it) roams with that MAC,
    not the topology's, and `testbed status` shows the MAC and addresses its eth0 holds
    (probe of 2026-12-06)."""
    topo = load_topology()
    h = topo.host("client2")
    home, away = h.attach, next(n.name for n in topo.nodes
                                if n.role == "cpe" and n.name != h.attach)
    changed = "02:5e:00:00:0b:0e"
    before = host_link.read(h.netns)
    assert before is not None and before.mac != changed
    subprocess.run(netns_argv(h.netns, ["ip", "link", "set", "eth0", "address", changed]),
                   check=True)
    try:
        m = move("client2", away)
        assert m["moved"] and m["mac"] == changed, m
        now = host_link.read(h.netns)
        assert now is not None and now.mac == changed
        assert now.addresses == before.addresses  # a roaming station keeps its address
        st = lifecycle.status()
        mine = next(x for x in st["hosts"] if x["name"] == "client2")
        assert mine["mac"] == changed and mine["node"] == away, mine
        assert mine["addresses"] == list(before.addresses), mine
        assert mine["address"] == before.address, mine
        # eth0 with no address: none shown, not the topology's
        route = subprocess.run(netns_argv(h.netns, ["ip", "-4", "route", "show", "default"]),
                               capture_output=True, text=True, check=True).stdout.split()
        subprocess.run(netns_argv(h.netns, ["ip", "addr", "flush", "dev", "eth0"]), check=True)
        try:
            bare = next(x for x in lifecycle.status()["hosts"] if x["name"] == "client2")
            assert bare["address"] is None and bare["addresses"] == [], bare
        finally:
            for a in before.addresses:
                subprocess.run(netns_argv(h.netns, ["ip", "addr", "add", a, "dev", "eth0"]),
                               check=False)
            if route:
                subprocess.run(netns_argv(h.netns, ["ip", "route", "replace", *route]),
                               check=False)
    finally:
        subprocess.run(netns_argv(h.netns, ["ip", "link", "set", "eth0", "address",
                                            str(before.mac)]), check=False)
        move("client2", home)
    back = host_link.read(h.netns)
    assert back is not None and back.mac == before.mac


def test_move_then_up_converges_and_serves(stack: httpx.Client) -> None:
    cp = cli("testbed", "move", "client1", "cpe2", "--json")
    assert json.loads(cp.stdout)["moved"] is True
    wait_for(lambda: running_at(stack, USER) == {f"cpe2-{USER}-firewall": "cpe2"}, 30,
             f"{USER}'s firewall to follow to cpe2")
    pids = processes.recorded()
    cli("testbed", "up", "--idle-timeout", str(IDLE))  # was: "cannot create veth ...: File exists"
    assert processes.recorded() == pids, "running processes are kept"
    st = lifecycle.status()
    assert next(h for h in st["hosts"] if h["name"] == "client1")["node"] == "cpe2"
    assert naming.ifname("cpe1", "client1") not in st["bridges"]["fate-cpe1"]["ports"]
    assert naming.ifname("cpe2", "client1") in st["bridges"]["fate-cpe2"]["ports"]
    wait_for(served, 10, f"{USER} served at cpe2 after up")
    assert running_at(stack, USER) == {f"cpe2-{USER}-firewall": "cpe2"}


def test_up_revives_killed_processes_and_the_user_stays_served(stack: httpx.Client) -> None:
    victims = ["controller", "agent-cpe2"]
    before = {n: read_record(processes.pid_dir() / f"{n}.pid") for n in victims}
    for rec in before.values():
        assert rec is not None
        os.kill(rec.pid, signal.SIGKILL)
    wait_for(lambda: not any(processes.alive(n) for n in victims), 10, "the kills")
    kept = {n: p for n, p in processes.recorded().items() if n not in victims}
    cp = cli("testbed", "up", "--idle-timeout", str(IDLE), "--json")
    out = json.loads(cp.stdout)
    assert sorted(out["processes"]["restarted"]) == sorted(victims), out["processes"]
    for n in victims:
        rec = read_record(processes.pid_dir() / f"{n}.pid")
        assert rec is not None and processes.alive(n)
        assert rec.pid != before[n].pid  # type: ignore[union-attr]
        assert rec.argv == before[n].argv  # type: ignore[union-attr]  # from its record
    assert {n: p for n, p in processes.recorded().items() if n not in victims} == kept
    wait_for(served, 15, f"{USER} served after the revival")
    assert running_at(stack, USER) == {f"cpe2-{USER}-firewall": "cpe2"}


def test_status_draws_the_tree(stack: httpx.Client) -> None:
    text = cli("testbed", "status").stdout
    for part in ("PE core", "CPE cpe1", "CPE cpe2", "DC dc", "client1", f"user {USER}",
                 f"NF firewall cpe2-{USER}-firewall"):
        assert part in text, text
    # client1 (and its user and firewall) on cpe2's branch, after the move
    assert text.index("CPE cpe2") < text.index(f"user {USER}")
    st = json.loads(cli("testbed", "status", "--json").stdout)
    assert st["up"] is True and any(u["name"] == USER for u in st["users"])
