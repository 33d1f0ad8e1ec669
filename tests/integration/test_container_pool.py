"""An NF born into a pre-made container (drivers/container_pool.py) keeps the container
flavour's whole promise on the real data plane: its identity (container id, cgroups with the
descriptor's limits, instance directory) is the NF's, it is confined as any container NF,
pause, crash and revival work, the firewall filters real traffic, a failed create from the
pool leaves nothing, and closing the pool leaves nothing either."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netfate import paths
from netfate.drivers import cgroups
from netfate.drivers.container import ContainerCompute
from netfate.drivers.runc import Runc
from netfate.errors import DriverError
from netfate.interfaces import NFState
from netfate.testbed.context import Testbed

from .conftest import Server, echo_ok, tcp_connect
from .test_compute_contract import DAEMON, INET, daemon_pid, deploy_for, nothing_left, probe

CAP_NET_ADMIN = 1 << 12  # linux/capability.h
PORTS = ("lan", "wan")


@pytest.fixture
def pooled(tb: Testbed) -> Iterator[ContainerCompute]:
    """cpe1's container driver with a pool of one; what it made is gone afterwards."""
    drv = tb.node("cpe1").driver("container")
    assert isinstance(drv, ContainerCompute)
    before = nothing_left()
    drv.set_pool_size(1)
    try:
        yield drv
    finally:
        for nf in drv.list_nfs():
            tb.node("cpe1").remove_nf(nf.instance_id)
        drv.set_pool_size(0)
        drv.close()
    assert nothing_left() == before


def _warm(drv: ContainerCompute, tb: Testbed, sha: str) -> str:
    drv.warm(sha)
    pool = drv.container_pool(tb.store.get(sha), PORTS)
    assert pool is not None
    names = pool.names()
    assert len(names) == 1
    return names.pop()


def test_an_nf_born_into_a_pooled_container_is_that_nf_alone(
    tb: Testbed, tmp_path: Path, pooled: ContainerCompute
) -> None:
    sha = probe(tb, tmp_path, {**DAEMON, "create": (
        'grep ^CapEff: /proc/self/status > "$NF_DIR/caps"; '
        'if touch /etc/written 2>/dev/null; then echo yes; else echo no; fi > "$NF_DIR/rw"; '
        'shopt -s nullglob dotglob; f=(/tmp/* /run/*); echo "${#f[@]}" > "$NF_DIR/left"')})
    name = _warm(pooled, tb, sha)
    runc = Runc(paths.run_dir() / "runc")
    ahead = runc.state(name)  # the image's process is the catalogue's idle one
    assert ahead is not None and ahead["status"] == "running", "started ahead, in the pool"
    node = tb.node("cpe1")
    iid = node.deploy_nf("pia", "probe", sha, {}, flavour="container").instance_id
    ids = runc.list_ids()
    assert name not in ids and f"fate-{iid}" in ids, "the pooled container became the NF's"
    d = paths.run_dir() / "nodes" / "cpe1" / "nfs" / iid
    assert int((d / "caps").read_text().split()[1], 16) == CAP_NET_ADMIN
    assert (d / "rw").read_text().strip() == "no", "the root must be read-only"
    assert (d / "left").read_text().strip() == "0", "a fresh container: empty /tmp, /run"
    assert int((cgroups.path("memory", iid) / "memory.limit_in_bytes").read_text()) == 64 << 20
    assert int((cgroups.path("cpu", iid) / "cpu.cfs_quota_us").read_text()) == 20_000
    assert daemon_pid(iid)  # the script's daemon sits in the NF's own cgroup
    pooled.pause_nf(iid)
    assert (cgroups.path("freezer", iid) / "freezer.state").read_text().strip() == "FROZEN"
    assert pooled.start_nf(iid).state == NFState.RUNNING
    state = runc.state(f"fate-{iid}")
    assert state is not None and state["status"] == "running"
    os.kill(int(state["pid"]), signal.SIGKILL)  # a crash of the container's process
    time.sleep(0.2)
    assert [i.state for i in pooled.list_nfs()] == [NFState.STOPPED]
    assert pooled.start_nf(iid).state == NFState.RUNNING  # run again, as the NF
    assert daemon_pid(iid)
    node.remove_nf(iid)
    assert f"fate-{iid}" not in runc.list_ids() and iid not in cgroups.list_ours()


def test_a_pooled_firewall_filters_real_traffic(
    tb: Testbed, fw_sha: str, servers: list[Server], pooled: ContainerCompute
) -> None:
    _warm(pooled, tb, fw_sha)
    servers += [Server("fate-h-inet", INET, 5201), Server("fate-h-inet", INET, 2323)]
    deploy_for(tb, "container", "client1", "user1", fw_sha, {"rules": [
        {"action": "allow", "proto": "tcp", "dport": 5201},
        {"action": "deny", "proto": "tcp", "dport": 2323}]})
    ok = tcp_connect("fate-h-client1", INET, 5201)
    assert ok is not None and echo_ok(ok)
    ok.close()
    assert tcp_connect("fate-h-client1", INET, 2323, timeout=0.7) is None


def test_a_failed_create_from_the_pool_leaves_nothing_of_the_nf(
    tb: Testbed, tmp_path: Path, pooled: ContainerCompute
) -> None:
    sha = probe(tb, tmp_path, {"create": "echo 'no such tool' >&2; exit 3"})
    _warm(pooled, tb, sha)
    node = tb.node("cpe1")
    with pytest.raises(DriverError, match="no such tool"):
        node.deploy_nf("pib", "probe", sha, {}, flavour="container")
    assert pooled.list_nfs() == []
    iid = "cpe1-pib-probe"
    assert f"fate-{iid}" not in Runc(paths.run_dir() / "runc").list_ids()
    assert iid not in cgroups.list_ours()
    assert not (paths.run_dir() / "nodes" / "cpe1" / "nfs" / iid).exists()
