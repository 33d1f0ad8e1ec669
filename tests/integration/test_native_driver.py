"""The native compute driver's checks of its inputs and the node's network abstraction on the
real data plane. The compute contract every flavour keeps (lifecycle, rollback, crash, traffic,
state) is test_compute_contract.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from netfate.bundle import build_bundle
from netfate.drivers import cgroups
from netfate.errors import Conflict, InvalidInput, MissingCapability, NotFound
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
