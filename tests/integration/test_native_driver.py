"""The native compute driver and the node's abstractions on the real data plane."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from netfate import naming
from netfate.bundle import build_bundle
from netfate.drivers import cgroups, netns
from netfate.errors import Conflict, DriverError, InvalidInput, MissingCapability, NotFound
from netfate.interfaces import NFState
from netfate.testbed.context import Testbed

from .conftest import ours_left


def custom_bundle(tb: Testbed, tmp: Path, scripts: dict[str, str], **desc: object) -> str:
    d = tmp / "b"
    (d / "scripts").mkdir(parents=True)
    descriptor = {"name": "probe", "version": "1", "ports": [{"name": "lan"}, {"name": "wan"}],
                  "resources": {"memory-mb": 64, "cpu-percent": 20}, **desc}
    (d / "descriptor.yaml").write_text(yaml.safe_dump(descriptor))
    for name in ("start", "stop"):
        scripts.setdefault(name, "true")
    for name, body in scripts.items():
        (d / "scripts" / name).write_text("#!/bin/bash\nset -eu\n" + body + "\n")
    return tb.store.add(build_bundle(d)).sha256


def snapshot() -> dict[str, object]:
    return {**ours_left(), "cgroups": cgroups.list_ours()}


def test_lifecycle_idempotent_with_env_inputs_and_cgroup(tb: Testbed, tmp_path: Path) -> None:
    sha = custom_bundle(tb, tmp_path, {
        "create": 'env | grep ^NF_ | sort > "$NF_DIR/env.txt"; ip -o link > "$NF_DIR/links"',
        "start": 'sleep 300 & echo $! > "$NF_RUN_DIR/sleep.pid"',
        "stop": 'kill "$(cat "$NF_RUN_DIR/sleep.pid")" || true',
        "status": 'echo "{\\"ok\\": true}"',
    })
    node = tb.node("cpe1")
    info = node.deploy_nf("alice", "probe", sha, {"x": 1})
    assert info.state == NFState.RUNNING
    assert node.deploy_nf is not None
    again = node.compute.create_nf("cpe1", "alice", "probe", sha, {"x": 1})  # idempotent
    assert again.instance_id == info.instance_id
    d = tb.store.root.parent / "nodes" / "cpe1" / "nfs" / info.instance_id
    env = dict(line.split("=", 1) for line in (d / "env.txt").read_text().splitlines())
    assert env["NF_PORTS"] == "lan wan" and env["NF_OWNER"] == "alice"
    assert json.loads(Path(env["NF_CONFIG"]).read_text()) == {"x": 1}
    links = (d / "links").read_text()
    assert " lan@" in links and " wan@" in links  # the script ran inside the NF's namespace
    assert info.netns == naming.nf_netns("cpe1", "alice", "probe")
    # the daemon sits in the NF's cgroup, whose limits come from the descriptor
    pids = cgroups.pids(info.instance_id)
    assert pids
    limit = (cgroups.path("memory", info.instance_id) / "memory.limit_in_bytes").read_text()
    assert int(limit) == 64 * 1024 * 1024
    quota = (cgroups.path("cpu", info.instance_id) / "cpu.cfs_quota_us").read_text()
    assert int(quota) == 20_000
    assert node.compute.start_nf(info.instance_id).state == NFState.RUNNING
    assert node.compute.status(info.instance_id).detail["ok"] is True
    assert node.compute.pause_nf(info.instance_id).state == NFState.PAUSED
    frozen = cgroups.path("freezer", info.instance_id) / "freezer.state"
    assert frozen.read_text().strip() == "FROZEN"
    assert node.compute.start_nf(info.instance_id).state == NFState.RUNNING
    assert frozen.read_text().strip() == "THAWED"
    assert node.compute.stop_nf(info.instance_id).state == NFState.STOPPED
    assert node.compute.stop_nf(info.instance_id).state == NFState.STOPPED
    ports = set(node.network.list_ports(node.lsi))
    assert {p.host_if for p in info.ports} <= ports
    node.remove_nf(info.instance_id)
    node.remove_nf(info.instance_id)  # idempotent
    assert not netns.exists(info.netns or "")
    assert not ({p.host_if for p in info.ports} & set(node.network.list_ports(node.lsi)))
    assert info.instance_id not in cgroups.list_ours()


def test_failed_create_rolls_back_everything(tb: Testbed, tmp_path: Path) -> None:
    sha = custom_bundle(tb, tmp_path, {"create": "echo 'no such tool' >&2; exit 3"})
    before = snapshot()
    with pytest.raises(DriverError, match="no such tool"):
        tb.node("cpe1").deploy_nf("bob", "probe", sha, {})
    assert snapshot() == before
    assert tb.node("cpe1").compute.list_nfs() == []


def test_failed_start_rolls_back_ports_too(tb: Testbed, tmp_path: Path) -> None:
    sha = custom_bundle(tb, tmp_path, {"start": "exit 1"})
    node = tb.node("cpe1")
    ports_before = set(node.network.list_ports(node.lsi))
    before = snapshot()
    with pytest.raises(DriverError, match="start failed"):
        node.deploy_nf("bob", "probe", sha, {})
    assert snapshot() == before
    assert set(node.network.list_ports(node.lsi)) == ports_before


def test_name_in_use_capability_and_bad_inputs(tb: Testbed, tmp_path: Path, fw_sha: str) -> None:
    node = tb.node("cpe1")
    node.deploy_nf("carol", "firewall", fw_sha, {})
    with pytest.raises(Conflict, match="already in use"):
        node.compute.create_nf("cpe1", "carol", "firewall", fw_sha, {"default_out": "deny"})
    before = snapshot()
    sha = custom_bundle(tb, tmp_path, {}, dependencies={
        "capability": [{"name": "warp-drive", "type": "hardware"}]})
    with pytest.raises(MissingCapability, match="warp-drive"):
        node.deploy_nf("carol", "probe", sha, {})
    with pytest.raises(InvalidInput, match="config"):
        node.deploy_nf("dave", "firewall", fw_sha, {"default_out": "maybe"})
    with pytest.raises(InvalidInput, match="owner"):
        node.deploy_nf("Bad Owner!", "firewall", fw_sha, {})
    with pytest.raises(NotFound, match="bundle"):
        node.deploy_nf("dave", "firewall", "f" * 64, {})
    with pytest.raises(NotFound):
        node.compute.start_nf("cpe1-nobody-firewall")
    assert snapshot() == before


def test_port_on_missing_lsi_is_refused(tb: Testbed) -> None:
    with pytest.raises(NotFound, match="LSI"):
        tb.network.create_port("fate-ghost", "fate-x1")
    assert "fate-ghost" not in tb.network.list_lsis()


def test_lsi_and_ts_rules_are_idempotent(tb: Testbed) -> None:
    from netfate.controller.model import Match, TSRule
    from netfate.controller.ts_rules import priority_of

    net = tb.network
    net.create_lsi("fate-lsi1")
    try:
        net.create_lsi("fate-lsi1")
        a = net.create_port("fate-lsi1", "fate-l1a", peer="fate-l1b")
        b = net.create_port("fate-lsi1", "fate-l1b", peer="fate-l1a")
        assert a != b
        rule = TSRule(rule_id="t1", priority=10, match=Match(in_port="fate-l1a"),
                      output=("fate-l1b",))
        net.create_ts_rule("fate-lsi1", rule)
        net.create_ts_rule("fate-lsi1", rule)
        prio = priority_of(rule)  # table 0's TS rule band
        assert len([f for f in net.dump_flows("fate-lsi1") if f["priority"] == prio]) == 1
        moved = TSRule(rule_id="t1", priority=10,
                       match=Match(in_port="fate-l1a", ip_proto=6, tp_dst=80),
                       output=("fate-l1b",))
        net.create_ts_rule("fate-lsi1", moved)  # the old match is replaced, not kept
        flows = [f for f in net.dump_flows("fate-lsi1") if f["priority"] == prio]
        assert len(flows) == 1 and flows[0]["match"].get("tcp_dst") == 80
        net.delete_ts_rule("fate-lsi1", "t1")
        net.delete_ts_rule("fate-lsi1", "t1")
        assert not [f for f in net.dump_flows("fate-lsi1") if f["priority"] == prio]
        with pytest.raises(NotFound, match="port"):
            net.create_ts_rule("fate-lsi1", TSRule(rule_id="t2", match=Match(in_port="nope"),
                                                   output=("fate-l1b",)))
        net.delete_port("fate-lsi1", "fate-l1a")
        net.delete_port("fate-lsi1", "fate-l1a")
    finally:
        net.delete_lsi("fate-lsi1")
        net.delete_lsi("fate-lsi1")
    assert "fate-lsi1" not in net.list_lsis()
