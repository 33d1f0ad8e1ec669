"""One contract, every flavour: the compute drivers (native, container, ...) on the real data
plane. Each test runs once per flavour in FLAVOURS; a new flavour is one more name there
(its driver registered under `netfate.compute`, and its `nothing_left` resources below).

The contract (interfaces.ComputeDriver, the NNF paper's Table II): idempotent
create/start/stop/update/pause/delete with the lifecycle scripts' inputs in environment and
files; a failed create or start leaves nothing; state exported by one flavour imports into
any other (an established connection survives the move); the firewall allows and denies
real traffic, per tenant; pause stops forwarding; a crash of the NF's process is reported
(the NF shows as stopped) and start brings it back.

The VM flavour runs the same contract; where a step must look inside the NF it does so in
the guest (the NF's files through the guest agent, its pause as QEMU's run state), and the
NF's "process" seen from the node is its QEMU. What does not apply to a VM is said where it
is skipped (cgroup limits: a guest's are its memory and vCPU). Its guests start from the
guest template (netfate.drivers.vm_template), so the whole VM column takes ~1-2 minutes.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from netfate import paths
from netfate.bundle import build_bundle
from netfate.drivers import cgroups, netns, vm_guest, vm_image, vm_qemu
from netfate.drivers.runc import Runc
from netfate.drivers.vm import VmCompute
from netfate.errors import DriverError
from netfate.interfaces import NFState
from netfate.oci.build import build_image
from netfate.oci.store import ImageStore
from netfate.testbed.context import Testbed

from .conftest import Server, echo_ok, ours_left, tcp_connect
from .test_vm_driver import qemus

FLAVOURS = ["native", "container", "vm"]
INET = "10.255.0.1"
PROBE_CAPS = ["bash", "iproute2"]
UP = 5.0  # s for a connection that must work (a VM guest under TCG forwards slowly)

pytestmark = pytest.mark.parametrize("flavour", FLAVOURS)


@functools.cache
def _guest() -> str:
    """Build the VM guest once (a no-op when it is there); "" or why VMs can't run."""
    if not Path(vm_qemu.QEMU).is_file():
        return "qemu-system-x86 is not installed (scripts/bootstrap.sh)"
    vm_image.build()
    return ""


@pytest.fixture(scope="module")
def _vm_guest() -> str:
    """Built before any test attaches the testbed: a node hosts the vm flavour only if the
    guest is there then (the state-moves test uses it from the container leg)."""
    return _guest()


@pytest.fixture(autouse=True)
def _flavour_ready(flavour: str, _vm_guest: str) -> None:
    if flavour == "vm" and _vm_guest:
        pytest.skip(_vm_guest)


def nothing_left() -> dict[str, object]:
    """Everything any flavour makes that must go with its NF."""
    out: dict[str, object] = {}
    for kind in ("nfs", "vms"):
        d = paths.run_dir() / "nodes" / "cpe1" / kind
        out[kind] = sorted(p.name for p in d.iterdir()) if d.is_dir() else []
    return {**ours_left(), "cgroups": cgroups.list_ours(),
            "containers": Runc(paths.run_dir() / "runc").list_ids(), "qemus": qemus(), **out}


def nf_file(compute: Any, flavour: str, iid: str, name: str) -> str:
    """A file the NF's scripts wrote in NF_DIR (a VM's is in its guest)."""
    if isinstance(compute, VmCompute):
        ga = compute._agent(iid)
        try:
            return ga.read_file(f"{vm_guest.G_DIR}/{name}").decode()
        finally:
            ga.close()
    return (paths.run_dir() / "nodes" / "cpe1" / "nfs" / iid / name).read_text()


def vm_daemon_runs(compute: VmCompute, iid: str, timeout: float = 5.0) -> bool:
    """Whether the probe's daemon runs in the guest (its PID file names a live process)."""
    deadline = time.monotonic() + timeout
    while True:
        ga = compute._agent(iid)
        try:
            rc, _, _ = ga.run(["/bin/sh", "-c", f'kill -0 "$(cat {vm_guest.G_DIR}/run/'
                               'sleeper.pid)"'], {"PATH": vm_guest.PATH}, 10)
        finally:
            ga.close()
        if rc == 0 or time.monotonic() > deadline:
            return rc == 0
        time.sleep(0.2)


def daemon_runs(compute: Any, iid: str) -> bool:
    if isinstance(compute, VmCompute):
        return vm_daemon_runs(compute, iid)
    return daemon_pid(iid) > 0


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
    env = dict(line.split("=", 1)
               for line in nf_file(compute, flavour, iid, "env.txt").splitlines())
    assert env["NF_PORTS"] == "lan wan" and env["NF_OWNER"] == "alice"
    assert nf_file(compute, flavour, iid, "config.seen") == '{"x": 1}'
    links = nf_file(compute, flavour, iid, "links")
    # the script ran in the NF's namespace (veths lan@ifN), or in its guest (NICs lan:)
    assert re.search(r" lan[@:]", links) and re.search(r" wan[@:]", links)
    assert daemon_runs(compute, iid)
    if flavour == "vm":  # no cgroup limits apply to a guest: its memory is QEMU's -m
        assert int(str(vm_qemu.load_spec(paths.run_dir() / "nodes" / "cpe1" / "vms" / iid)
                       ["memory_mb"])) >= 64
    else:  # the daemon sits in the NF's cgroup, limited by the descriptor
        limit = (cgroups.path("memory", iid) / "memory.limit_in_bytes").read_text()
        assert int(limit) == 64 * 1024 * 1024
        assert int((cgroups.path("cpu", iid) / "cpu.cfs_quota_us").read_text()) == 20_000
    assert compute.start_nf(iid).state == NFState.RUNNING
    assert compute.status(iid).detail["ok"] is True
    assert compute.update_nf(iid, {"x": 2}).config == {"x": 2}
    assert nf_file(compute, flavour, iid, "config.seen") == '{"x": 2}'
    assert compute.pause_nf(iid).state == NFState.PAUSED
    assert compute.pause_nf(iid).state == NFState.PAUSED
    assert frozen(compute, iid) is True
    assert compute.start_nf(iid).state == NFState.RUNNING
    assert frozen(compute, iid) is False
    assert compute.stop_nf(iid).state == NFState.STOPPED
    assert compute.stop_nf(iid).state == NFState.STOPPED
    assert compute.start_nf(iid).state == NFState.RUNNING
    node.remove_nf(iid)
    node.remove_nf(iid)  # idempotent
    assert info.netns is None or not netns.exists(info.netns)
    assert iid not in cgroups.list_ours()
    assert compute.list_nfs() == []
    assert qemus() == []


def frozen(compute: Any, iid: str) -> bool:
    """Whether the NF is frozen: its cgroup's freezer, or its guest's run state."""
    if isinstance(compute, VmCompute):
        return bool(compute.status(iid).detail.get("vm") == "paused")
    state = (cgroups.path("freezer", iid) / "freezer.state").read_text().strip()
    return state == "FROZEN"


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
    if isinstance(compute, VmCompute):  # seen from the node, a VM NF's process is its QEMU
        d = paths.run_dir() / "nodes" / "cpe1" / "vms" / iid
        rec = vm_qemu.running(d)
        assert rec is not None and vm_daemon_runs(compute, iid)
        os.kill(rec.pid, signal.SIGKILL)
        vm_qemu.wait_gone(d, 5)
    else:
        os.kill(daemon_pid(iid), signal.SIGKILL)
    time.sleep(0.1)
    assert [i.state for i in compute.list_nfs()] == [NFState.STOPPED]
    assert compute.start_nf(iid).state == NFState.RUNNING
    assert [i.state for i in compute.list_nfs()] == [NFState.RUNNING]
    assert daemon_runs(compute, iid)
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
    ok = tcp_connect("fate-h-client1", INET, 5201, timeout=UP)
    assert ok is not None and echo_ok(ok)
    ok.close()
    assert tcp_connect("fate-h-client1", INET, 2323, timeout=0.7) is None
    counters = [r["packets"] for r in tb.node("cpe1").driver(flavour).status(iid)
                .detail["rules"]]
    assert counters[0] > 0 and counters[1] > 0, "both rules saw the traffic"
    # updateNF applies live
    tb.node("cpe1").driver(flavour).update_nf(iid, {"rules": []})
    ok = tcp_connect("fate-h-client1", INET, 2323, timeout=UP)
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
    other = tcp_connect("fate-h-client2", INET, 2323, timeout=UP)
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
    s = tcp_connect("fate-h-client1", INET, 5201, timeout=UP)
    assert s is not None and echo_ok(s)
    s.close()


def test_state_moves_to_any_flavour_and_the_connection_survives(
    tb: Testbed, fw_sha: str, servers: list[Server], flavour: str
) -> None:
    """Export from this flavour, import into the next one (native -> container -> ... ->
    native): with the conntrack entries, an established connection survives though the new
    instance's rules admit no new connection."""
    other = FLAVOURS[(FLAVOURS.index(flavour) + 1) % len(FLAVOURS)]
    if other == "vm" and _guest():
        pytest.skip(_guest())
    servers.append(Server("fate-h-inet", INET, 5201))
    node_name, mac, access, uplink = tb.access("client1")
    node = tb.node(node_name)
    old = node.deploy_nf("user1", "fw-old", fw_sha, {
        "default_out": "deny", "rules": [{"action": "allow", "proto": "tcp", "dport": 5201}]},
        flavour=flavour)
    node.steer("user:user1", mac, access, uplink, [old])
    conn = tcp_connect("fate-h-client1", INET, 5201, timeout=UP)
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
    conn.settimeout(UP)
    assert echo_ok(conn, b"after-the-move"), f"{flavour} -> {other} lost the connection"
    conn.close()
    assert tcp_connect("fate-h-client1", INET, 5201, timeout=0.7) is None
