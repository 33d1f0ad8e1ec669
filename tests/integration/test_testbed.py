"""The emulated testbed: up is idempotent, down removes everything, even after a crash."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from netfate import paths
from netfate.drivers import cgroups
from netfate.drivers.ovs import OvsServer
from netfate.errors import Conflict, DriverError, InvalidInput
from netfate.testbed import lifecycle, processes
from netfate.testbed.settings import TestbedSettings
from netfate.testbed.topology import load_topology

from .conftest import ours_left

NETFATE = [str(Path(sys.executable).parent / "netfate")]


def ping(ns: str, ip: str) -> bool:
    cp = subprocess.run(["ip", "netns", "exec", ns, "ping", "-c1", "-W1", ip],
                        capture_output=True, check=False)
    return cp.returncode == 0


@pytest.fixture
def clean() -> object:
    lifecycle.down()
    yield None
    lifecycle.down()


def test_up_twice_status_traffic_and_down(clean: object) -> None:
    topo = load_topology()
    first = lifecycle.up(topo)
    second = lifecycle.up(topo)  # idempotent
    assert first["ovs"] == second["ovs"]
    st = lifecycle.status()
    assert st["up"] and st["topology"] == "netfate-poc"
    assert {p for p, v in st["processes"].items() if v["alive"]} == {
        "orchestrator", "controller", "agent-core", "agent-dc", "agent-cpe1", "agent-cpe2",
        "access-cpe1", "access-cpe2"}
    assert set(st["bridges"]) == {"fate-core", "fate-dc", "fate-cpe1", "fate-cpe2"}
    assert {h["name"] for h in st["hosts"]} == {"inet", "client1", "client2"}
    # the controller owns the switches: nobody gets out before logging in at the portal
    assert not ping("fate-h-client1", topo.internet_address)
    assert not ping("fate-h-client1", topo.host_address(topo.host("client2")))
    removed = lifecycle.down()
    assert set(first["ovs"].values()) | set(first["pids"].values()) <= set(removed["pids"])
    assert ours_left() == {"namespaces": [], "links": []}
    assert not paths.run_dir().exists()
    # up again at once, as a plain learning switch (no services): everyone reaches everyone
    lifecycle.up(topo, services=False)
    assert ping("fate-h-client1", topo.internet_address)
    assert ping("fate-h-client2", topo.internet_address)
    assert ping("fate-h-client1", topo.host_address(topo.host("client2")))


def test_testbed_is_sealed(clean: object) -> None:
    lifecycle.up(load_topology())
    for host in ("fate-h-client1", "fate-h-inet"):
        routes = subprocess.run(["ip", "-n", host, "-j", "route"], capture_output=True,
                                check=True).stdout
        for r in json.loads(routes):
            assert r.get("dev") in ("eth0", "lo")
            gw = r.get("gateway")
            assert gw is None or gw.startswith("10.90.")


def test_down_after_kill_9_removes_everything(clean: object) -> None:
    state = lifecycle.up(load_topology())
    for pid in state["ovs"].values():
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    lifecycle.down()
    assert ours_left() == {"namespaces": [], "links": []}
    assert cgroups.list_ours() == []
    assert not OvsServer(paths.ovs_dir()).running()
    lifecycle.up(load_topology(), services=False)
    assert ping("fate-h-client1", "10.255.0.1")


def test_three_cpe_topology(clean: object, tmp_path: Path) -> None:
    from importlib import resources

    f = tmp_path / "t.yaml"
    f.write_text(resources.files("netfate.testbed").joinpath("three-cpe.yaml").read_text())
    topo = load_topology(f)
    lifecycle.up(topo, services=False)
    assert ping("fate-h-client3", topo.internet_address)
    assert "fate-cpe3" in lifecycle.status()["bridges"]


def test_same_name_other_nodes_is_refused_and_changes_nothing(clean: object,
                                                             tmp_path: Path) -> None:
    """Only the names were compared: a topology called like the one up, with other nodes,
    half-built over it (probe of 2026-12-06)."""
    topo = load_topology()
    lifecycle.up(topo, services=False)
    before = ours_left()
    f = tmp_path / "t.yaml"
    f.write_text(f"name: {topo.name}\nnodes: [{{name: core, role: pe}}, "
                 "{name: cpe3, role: cpe, uplink: core}]\n")
    with pytest.raises(Conflict, match="other nodes, hosts"):
        lifecycle.up(load_topology(f), services=False)
    assert ours_left() == before


def test_a_failed_up_removes_what_it_made(clean: object,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh `up` that fails part way leaves nothing (it left namespaces, links and OVS,
    and no record, so the next `up` failed obscurely: probe of 2026-12-06)."""
    from netfate.testbed import underlay

    def broken(*_: object) -> None:
        raise DriverError("the overlay failed (test)")

    monkeypatch.setattr(underlay, "up", broken)
    with pytest.raises(DriverError, match="overlay failed"):
        lifecycle.up(load_topology(), services=False)
    assert ours_left() == {"namespaces": [], "links": []}
    assert lifecycle.load_state() is None and not paths.run_dir().exists()
    assert OvsServer(paths.ovs_dir()).pid("ovs-vswitchd") is None


def test_an_up_under_another_run_dir_leaves_the_testbed_that_is_up(clean: object,
                                                                     tmp_path: Path) -> None:
    """A second `up` under another NETFATE_RUN_DIR failed over the first one's bridges, and
    its undo removed that testbed's namespaces (third probe of 2026-12-06)."""
    lifecycle.up(load_topology(), services=False)
    before = ours_left()
    was = paths.run_dir()
    paths.configure(tmp_path / "other")
    try:
        with pytest.raises(Conflict, match="records no testbed"):
            lifecycle.up(load_topology(), services=False)
    finally:
        paths.configure(was)
    assert ours_left() == before and lifecycle.status()["up"]


def test_sigterm_during_up_removes_what_it_made(clean: object) -> None:
    """`timeout` or systemd end `up` with SIGTERM: it left ~250 links and OVS behind (only
    Ctrl-C undid it: re-probe of 2026-12-06)."""
    proc = subprocess.Popen([*NETFATE, "testbed", "up", "--no-services"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not ours_left()["links"] and time.monotonic() < deadline \
                and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "up ended before it could be interrupted"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert ours_left() == {"namespaces": [], "links": []}
    assert lifecycle.load_state() is None


def test_down_keeps_a_run_dir_it_did_not_make(clean: object, tmp_path: Path) -> None:
    """NETFATE_RUN_DIR may name any directory: `down` removed /tmp/x with its files (probe
    of 2026-12-06). It removes only a run dir NetFATE made, and `up` refuses one that
    holds someone else's files."""
    foreign = tmp_path / "x"
    (foreign / "sub").mkdir(parents=True)
    (foreign / "important.txt").write_text("precious")
    was = paths.run_dir()
    paths.configure(foreign)
    try:
        removed = lifecycle.down()
        assert removed["kept"] == str(foreign)
        assert (foreign / "important.txt").read_text() == "precious"
        with pytest.raises(InvalidInput, match="not one NetFATE made"):
            lifecycle.up(load_topology(), services=False)
        assert ours_left() == {"namespaces": [], "links": []}
        assert sorted(p.name for p in foreign.iterdir()) == ["important.txt", "sub"]
        mine = tmp_path / "mine"  # new: made, marked, and removed by down
        paths.configure(mine)
        lifecycle.up(load_topology(), services=False)
        assert (mine / paths.MARKER).is_file()
        lifecycle.down()
        assert not mine.exists()
    finally:
        paths.configure(was)


def test_bad_topology_changes_nothing(clean: object, tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("name: x\nnodes: [{name: a, role: cpe, uplink: ghost}]\n")
    with pytest.raises(InvalidInput, match="uplink"):
        load_topology(f)
    cp = subprocess.run([*NETFATE, "testbed", "up", "--topology", str(f)],
                        capture_output=True, text=True, check=False)
    assert cp.returncode == 1 and "uplink" in cp.stderr
    assert ours_left() == {"namespaces": [], "links": []}


def test_cli_status_json_and_down(clean: object) -> None:
    subprocess.run([*NETFATE, "testbed", "up"], check=True, capture_output=True)
    cp = subprocess.run([*NETFATE, "testbed", "status", "--json"], check=True,
                        capture_output=True, text=True)
    st = json.loads(cp.stdout)
    assert st["up"] and len(st["links"]) == 6
    subprocess.run([*NETFATE, "testbed", "down"], check=True, capture_output=True)
    assert ours_left() == {"namespaces": [], "links": []}


def test_up_takes_its_knobs_as_parameters(clean: object) -> None:
    """The idle timeout, re-auth lifetime and ports are parameters of up(), passed on to the
    services as flags; nothing goes through this process's environment."""
    t = TestbedSettings(idle_timeout=7, reauth_lifetime=120, api_port=8191, command_timeout=4)
    lifecycle.up(load_topology(), settings=t)
    assert "NETFATE_TESTBED_IDLE_TIMEOUT" not in os.environ
    argv = json.loads((processes.pid_dir() / "orchestrator.pid").read_text())["argv"]
    flags = dict(itertools.pairwise(argv))
    assert (flags["--user-idle-timeout"], flags["--reauth-lifetime"]) == ("7", "120")
    assert (flags["--port"], flags["--command-timeout"]) == ("8191", "4")
    assert lifecycle.api_url() == lifecycle.status()["api"] == "http://127.0.0.1:8191"
    assert httpx.get(f"{lifecycle.api_url()}/api/v1/health", timeout=5).status_code == 200
    # Other settings over it: refused at once, naming them, the record unchanged (it
    # waited 30 s for agents, then recorded the new port: probe of 2026-12-06).
    before = lifecycle.state_file().read_text()
    other = TestbedSettings(idle_timeout=600, reauth_lifetime=120, api_port=8282,
                            command_timeout=4)
    with pytest.raises(Conflict, match=r"api_port 8191 -> 8282.*idle_timeout 7 -> 600"):
        lifecycle.up(load_topology(), settings=other)
    assert lifecycle.state_file().read_text() == before
    lifecycle.up(load_topology(), settings=t)  # the same ones: converges
