"""One contract, every flavour: the compute drivers (native, container, ...) on the real data
plane. Each test runs once per flavour in FLAVOURS; a new flavour is one more name there
(its driver registered under `netfate.compute`, and its `nothing_left` resources below).

The contract (interfaces.ComputeDriver, the NNF paper's Table II): idempotent
create/start/stop/update/pause/delete with the lifecycle scripts' inputs in environment and
files; a failed create or start leaves nothing; state exported by one flavour imports into
any other (an established connection survives the move); the firewall allows and denies
real traffic, per tenant; pause stops forwarding; a crash of the NF's process is reported
(the NF shows as stopped) and start brings it back.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from netfate import paths
from netfate.bundle import build_bundle
from netfate.drivers import cgroups, netns
from netfate.drivers.runc import Runc
from netfate.errors import DriverError
from netfate.interfaces import NFState
from netfate.oci.build import build_image
from netfate.oci.store import ImageStore
from netfate.testbed.context import Testbed

from .conftest import Server, echo_ok, ours_left, tcp_connect

FLAVOURS = ["native", "container"]  # the VM driver adds "vm" here
INET = "10.255.0.1"
PROBE_CAPS = ["bash", "iproute2"]

pytestmark = pytest.mark.parametrize("flavour", FLAVOURS)


def nothing_left() -> dict[str, object]:
    """Everything any flavour makes that must go with its NF."""
    nfs = paths.run_dir() / "nodes" / "cpe1" / "nfs"
    return {**ours_left(), "cgroups": cgroups.list_ours(),
            "containers": Runc(paths.run_dir() / "runc").list_ids(),
            "dirs": sorted(p.name for p in nfs.iterdir()) if nfs.is_dir() else []}


def probe(tb: Testbed, tmp: Path, scripts: dict[str, str]) -> str:
    """A bundle of the given scripts offering every flavour; its image (tools only, shared
    by every probe bundle) is built into the node's store once."""
    name = "probe"
    d = tmp / name
    (d / "scripts").mkdir(parents=True)
    desc = {"name": name, "version": "1", "flavours": FLAVOURS,
            "ports": [{"name": "lan"}, {"name": "wan"}],
            "resources": {"memory-mb": 64, "cpu-percent": 20},
            "linux-capabilities": ["CAP_NET_ADMIN"]}
    (d / "descriptor.yaml").write_text(yaml.safe_dump(desc))
    for action in ("start", "stop"):
        scripts.setdefault(action, "true")
    for action, body in scripts.items():
        (d / "scripts" / action).write_text("#!/bin/bash\nset -eu\n" + body + "\n")
    store = ImageStore(paths.run_dir() / "images")
    if not store.has(f"{name}-1"):
        build_image(store, d, f"{name}-1", PROBE_CAPS)
    return tb.store.add(build_bundle(d)).sha256


def deploy_for(tb: Testbed, flavour: str, host: str, owner: str, sha: str,
               cfg: dict[str, object], name: str = "firewall") -> str:
    node_name, mac, access, uplink = tb.access(host)
    node = tb.node(node_name)
    info = node.deploy_nf(owner, name, sha, cfg, flavour=flavour)
    assert info.flavour == flavour
    node.steer(f"user:{owner}", mac, access, uplink, [info])
    return info.instance_id


def daemon_pid(instance_id: str, timeout: float = 3.0) -> int:
    """The host PID of the probe's daemon (`sleep 300`), found in the NF's cgroup. Looked for
    again for up to `timeout` s: right after its exec a process's cmdline reads empty, and a
    detached `runc exec` may still be placing it."""
    deadline = time.monotonic() + timeout
    while True:
        for pid in cgroups.pids(instance_id):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2]
            except OSError:
                continue
            if argv == [b"sleep", b"300"]:
                return pid
        if time.monotonic() > deadline:
            raise AssertionError(f"no daemon in {instance_id}'s cgroup")
        time.sleep(0.05)


DAEMON = {"start": 'sleep 300 & echo "$!" > "$NF_RUN_DIR/sleeper.pid"',
          "stop": 'kill "$(cat "$NF_RUN_DIR/sleeper.pid")" 2>/dev/null || true; '
                  'rm -f "$NF_RUN_DIR/sleeper.pid"'}


def test_lifecycle_is_idempotent_with_inputs_in_env_and_files(
    tb: Testbed, tmp_path: Path, flavour: str
) -> None:
    sha = probe(tb, tmp_path, {
        **DAEMON,
        "create": 'env | grep ^NF_ | sort > "$NF_DIR/env.txt"; ip -o link > "$NF_DIR/links"; '
                  'cat "$NF_CONFIG" > "$NF_DIR/config.seen"',
        "update": 'cat "$NF_CONFIG" > "$NF_DIR/config.seen"',
        "status": 'echo "{\\"ok\\": true}"',
    })
    node = tb.node("cpe1")
    compute = node.driver(flavour)
    info = node.deploy_nf("alice", "probe", sha, {"x": 1}, flavour=flavour)
    iid = info.instance_id
    assert info.state == NFState.RUNNING and node.driver_of(iid) is compute
    assert compute.create_nf("cpe1", "alice", "probe", sha, {"x": 1}).instance_id == iid
    d = paths.run_dir() / "nodes" / "cpe1" / "nfs" / iid
    env = dict(line.split("=", 1) for line in (d / "env.txt").read_text().splitlines())
    assert env["NF_PORTS"] == "lan wan" and env["NF_OWNER"] == "alice"
    assert (d / "config.seen").read_text() == '{"x": 1}'
    links = (d / "links").read_text()
    assert " lan@" in links and " wan@" in links  # the script ran in the NF's namespace
    assert daemon_pid(iid)  # the daemon sits in the NF's cgroup, limited by the descriptor
    limit = (cgroups.path("memory", iid) / "memory.limit_in_bytes").read_text()
    assert int(limit) == 64 * 1024 * 1024
    assert int((cgroups.path("cpu", iid) / "cpu.cfs_quota_us").read_text()) == 20_000
    assert compute.start_nf(iid).state == NFState.RUNNING
    assert compute.status(iid).detail["ok"] is True
    assert compute.update_nf(iid, {"x": 2}).config == {"x": 2}
    assert (d / "config.seen").read_text() == '{"x": 2}'
    frozen = cgroups.path("freezer", iid) / "freezer.state"
    assert compute.pause_nf(iid).state == NFState.PAUSED
    assert compute.pause_nf(iid).state == NFState.PAUSED
    assert frozen.read_text().strip() == "FROZEN"
    assert compute.start_nf(iid).state == NFState.RUNNING
    assert frozen.read_text().strip() == "THAWED"
    assert compute.stop_nf(iid).state == NFState.STOPPED
    assert compute.stop_nf(iid).state == NFState.STOPPED
    assert compute.start_nf(iid).state == NFState.RUNNING
    node.remove_nf(iid)
    node.remove_nf(iid)  # idempotent
    assert not netns.exists(info.netns or "")
    assert iid not in cgroups.list_ours()
    assert compute.list_nfs() == []


@pytest.mark.parametrize("step", ["create", "start"])
def test_a_failed_create_or_start_leaves_nothing(
    tb: Testbed, tmp_path: Path, flavour: str, step: str
) -> None:
    sha = probe(tb, tmp_path, {step: "echo 'no such tool' >&2; exit 3"})
    node = tb.node("cpe1")
    ports_before = set(node.network.list_ports(node.lsi))
    before = nothing_left()
    with pytest.raises(DriverError, match="no such tool"):
        node.deploy_nf("bob", f"bad{step}", sha, {}, flavour=flavour)
    assert nothing_left() == before
    assert set(node.network.list_ports(node.lsi)) == ports_before
    assert node.driver(flavour).list_nfs() == []


def test_a_crash_of_the_nf_process_is_reported_and_start_revives_it(
    tb: Testbed, tmp_path: Path, flavour: str
) -> None:
    sha = probe(tb, tmp_path, dict(DAEMON))
    node = tb.node("cpe1")
    compute = node.driver(flavour)
    iid = node.deploy_nf("carol", "crashy", sha, {}, flavour=flavour).instance_id
    os.kill(daemon_pid(iid), signal.SIGKILL)
    time.sleep(0.1)
    assert [i.state for i in compute.list_nfs()] == [NFState.STOPPED]
    assert compute.start_nf(iid).state == NFState.RUNNING
    assert [i.state for i in compute.list_nfs()] == [NFState.RUNNING]
    assert daemon_pid(iid)
    if flavour == "container":  # the container's own process is the NF's process too
        state = Runc(paths.run_dir() / "runc").state(f"fate-{iid}")
        assert state is not None
        os.kill(int(state["pid"]), signal.SIGKILL)
        time.sleep(0.2)
        assert [i.state for i in compute.list_nfs()] == [NFState.STOPPED]
        assert compute.start_nf(iid).state == NFState.RUNNING
        assert daemon_pid(iid)


def test_the_firewall_allows_and_denies_real_traffic(
    tb: Testbed, fw_sha: str, servers: list[Server], flavour: str
) -> None:
    servers += [Server("fate-h-inet", INET, 5201), Server("fate-h-inet", INET, 2323)]
    iid = deploy_for(tb, flavour, "client1", "user1", fw_sha, {"rules": [
        {"action": "allow", "proto": "tcp", "dport": 5201},
        {"action": "deny", "proto": "tcp", "dport": 2323}]})
    ok = tcp_connect("fate-h-client1", INET, 5201)
    assert ok is not None and echo_ok(ok)
    ok.close()
    assert tcp_connect("fate-h-client1", INET, 2323, timeout=0.7) is None
    counters = [r["packets"] for r in tb.node("cpe1").driver(flavour).status(iid)
                .detail["rules"]]
    assert counters[0] > 0 and counters[1] > 0, "both rules saw the traffic"
    # updateNF applies live
    tb.node("cpe1").driver(flavour).update_nf(iid, {"rules": []})
    ok = tcp_connect("fate-h-client1", INET, 2323)
    assert ok is not None
    ok.close()


def test_tenants_are_isolated(
    tb: Testbed, fw_sha: str, servers: list[Server], flavour: str
) -> None:
    servers.append(Server("fate-h-inet", INET, 2323))
    deploy_for(tb, flavour, "client1", "user1", fw_sha,
               {"rules": [{"action": "deny", "proto": "tcp", "dport": 2323}]})
    deploy_for(tb, flavour, "client2", "user2", fw_sha, {"rules": []})
    assert tcp_connect("fate-h-client1", INET, 2323, timeout=0.7) is None
    other = tcp_connect("fate-h-client2", INET, 2323)
    assert other is not None and echo_ok(other), "user1's rules must not apply to user2"
    other.close()


def test_pause_stops_forwarding_and_start_resumes(
    tb: Testbed, fw_sha: str, servers: list[Server], flavour: str
) -> None:
    servers.append(Server("fate-h-inet", INET, 5201))
    iid = deploy_for(tb, flavour, "client1", "user1", fw_sha, {})
    compute = tb.node("cpe1").driver(flavour)
    compute.pause_nf(iid)
    assert tcp_connect("fate-h-client1", INET, 5201, timeout=0.7) is None
    compute.start_nf(iid)
    s = tcp_connect("fate-h-client1", INET, 5201)
    assert s is not None and echo_ok(s)
    s.close()


def test_state_moves_to_any_flavour_and_the_connection_survives(
    tb: Testbed, fw_sha: str, servers: list[Server], flavour: str
) -> None:
    """Export from this flavour, import into the next one (native -> container -> ... ->
    native): with the conntrack entries, an established connection survives though the new
    instance's rules admit no new connection."""
    other = FLAVOURS[(FLAVOURS.index(flavour) + 1) % len(FLAVOURS)]
    servers.append(Server("fate-h-inet", INET, 5201))
    node_name, mac, access, uplink = tb.access("client1")
    node = tb.node(node_name)
    old = node.deploy_nf("user1", "fw-old", fw_sha, {
        "default_out": "deny", "rules": [{"action": "allow", "proto": "tcp", "dport": 5201}]},
        flavour=flavour)
    node.steer("user:user1", mac, access, uplink, [old])
    conn = tcp_connect("fate-h-client1", INET, 5201)
    assert conn is not None and echo_ok(conn, b"before")
    state = node.driver(flavour).export_state(old.instance_id)
    assert state["format"] == "netfate-state/1" and state["nf"] == "firewall"
    assert any("5201" in e for e in state["conntrack"])
    locked = {"default_out": "deny", "rules": []}
    new = node.deploy_nf("user1", "fw-new", fw_sha, locked, flavour=other)
    node.driver(other).import_state(new.instance_id, {**state, "config": locked})
    node.steer("user:user1", mac, access, uplink, [new])
    node.remove_nf(old.instance_id)
    time.sleep(0.1)
    conn.settimeout(1.0)
    assert echo_ok(conn, b"after-the-move"), f"{flavour} -> {other} lost the connection"
    conn.close()
    assert tcp_connect("fate-h-client1", INET, 5201, timeout=0.7) is None
