"""`netfate agent --controller`: the targets are checked strictly and bounded (a bad one is
named), and the agent creates its switch with them and the node's datapath id, the one the
controller maps to the node (controller/pipeline.py, as `netfate testbed up` does)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import typer

from netfate.agent.service import Agent
from netfate.cli.common import controller_targets
from netfate.controller.pipeline import datapath_id, ovs_datapath_id
from netfate.controller.targets import MAX_LEN, MAX_TARGETS, targets
from netfate.drivers.ovs import OvsServer


@pytest.mark.parametrize("spec, want", [
    ("tcp:10.0.0.1:6653", ["tcp:10.0.0.1:6653"]),
    ("tcp:10.0.0.1:6653,tcp:10.0.0.2:6653", ["tcp:10.0.0.1:6653", "tcp:10.0.0.2:6653"]),
    ("ssl:ctl.example.net:6653", ["ssl:ctl.example.net:6653"]),
    ("tcp:[fd00::1]:1,ssl:[::1]:65535", ["tcp:[fd00::1]:1", "ssl:[::1]:65535"]),
    ("tcp:h:1,ssl:h:1", ["tcp:h:1", "ssl:h:1"]),  # another protocol: another target
    (",".join(f"tcp:10.0.0.{i}:6653" for i in range(1, MAX_TARGETS + 1)),
     [f"tcp:10.0.0.{i}:6653" for i in range(1, MAX_TARGETS + 1)]),
])
def test_good_targets(spec: str, want: list[str]) -> None:
    assert targets(spec) == want
    assert controller_targets(spec) == ",".join(want)


LONG_NAME = ".".join(["a" * 63] * 4)  # 255 characters: over DNS's 253


@pytest.mark.parametrize("spec, named", [
    ("", "no controller target"),
    ("tcp:host", "'tcp:host'"),
    ("tcp:h:0", "'tcp:h:0'"),
    ("tcp:h:070", "'tcp:h:070'"),
    ("tcp:h:70000", "'tcp:h:70000'"),
    ("tcp:h:123456", "'tcp:h:123456'"),
    ("udp:h:1", "'udp:h:1'"),
    ("h:6653", "'h:6653'"),
    ("tcp:10.0.0.1:6653,udp:h:1", "'udp:h:1'"),
    ("tcp:10.0.0.1:6653,", "''"),
    ("tcp:h:1\n", r"'tcp:h:1\n'"),
    ("tcp:h:1\nother", r"'tcp:h:1\nother'"),
    ("tcp:h:1, tcp:g:1", "' tcp:g:1'"),
    ("tcp:::1:6653", "'tcp:::1:6653'"),
    ("tcp:[fd00::zz]:1", "'tcp:[fd00::zz]:1'"),
    ("tcp:[fd00::1::2]:1", "not an IPv6 address"),
    ("tcp:999.1.1.1:1", "not an IPv4 address"),
    ("tcp:10.0.0.01:1", "not an IPv4 address"),
    ("tcp:-h:1", "'tcp:-h:1'"),
    ("tcp:a..b:1", "not a DNS name"),
    ("tcp:" + ".".join(["a" * 64] * 2) + ":1", "not a DNS name"),  # a label over 63
    (f"tcp:{LONG_NAME}:1", "not a controller target"),
    ("tcp:h\u00e9:1", "not a controller target"),
    ("tcp:h:\u0661", "not a controller target"),  # an Arabic-Indic digit one
    ("tcp:H:1,tcp:h:1", "given twice: 'tcp:h:1'"),
    (",".join(f"tcp:10.0.0.{i}:6653" for i in range(1, MAX_TARGETS + 2)),
     f"{MAX_TARGETS + 1} controller targets given"),
    ("tcp:h:1," * 200 + "tcp:h:1", f"longer than {MAX_LEN}"),
    ("x" * 1_000_000, f"longer than {MAX_LEN}"),
])
def test_bad_targets_are_named(spec: str, named: str) -> None:
    with pytest.raises(ValueError) as err:
        targets(spec)
    assert named in str(err.value)
    assert len(str(err.value)) < 200  # bounded, however long the value
    with pytest.raises(typer.BadParameter) as bad:
        controller_targets(spec)
    assert named in str(bad.value)


def test_cli_refuses_a_bad_target_before_anything_is_done() -> None:
    from typer.testing import CliRunner

    from netfate.cli.main import app

    res = CliRunner().invoke(app, ["agent", "--node", "cpe1", "--controller", "udp:h:1"])
    assert res.exit_code == 2
    assert "udp:h:1" in res.output


class RecordingNetwork:
    """What the agent asks of the switch at start (the rest of NetworkDriver: unused)."""

    def __init__(self) -> None:
        self.created: list[tuple[str, dict[str, Any]]] = []

    def create_lsi(self, lsi: str, *, controller: str | None = None,
                   datapath_id: str | None = None) -> None:
        self.created.append((lsi, {"controller": controller, "datapath_id": datapath_id}))


def _agent(tmp_path: Path, **kw: Any) -> tuple[Agent, RecordingNetwork]:
    a = Agent("cpe1", "cpe", "nats://127.0.0.1:4222", tmp_path, OvsServer(tmp_path / "ovs"),
              flavours=["native"], **kw)
    net = RecordingNetwork()
    a.network = net  # type: ignore[assignment]
    a._collect_garbage = list  # type: ignore[method-assign]  # nothing left from a crash
    return a, net


def test_agent_creates_its_switch_with_the_controllers_and_the_nodes_datapath_id(
        tmp_path: Path) -> None:
    a, net = _agent(tmp_path, controller="tcp:10.0.0.1:6653,tcp:10.0.0.2:6653")
    asyncio.run(a.network_ready())
    assert net.created == [("fate-cpe1", {"controller": "tcp:10.0.0.1:6653,tcp:10.0.0.2:6653",
                                          "datapath_id": ovs_datapath_id("cpe1")})]
    # The one the controller maps to the node when its switch connects.
    assert int(net.created[0][1]["datapath_id"], 16) == datapath_id("cpe1")
    assert len(net.created[0][1]["datapath_id"]) == 16


def test_agent_without_controllers_leaves_the_switches_own(tmp_path: Path) -> None:
    a, net = _agent(tmp_path)
    asyncio.run(a.network_ready())
    assert net.created == [("fate-cpe1", {"controller": None,
                                          "datapath_id": ovs_datapath_id("cpe1")})]


def test_controller_managed_stays_as_it_was(tmp_path: Path) -> None:
    """A controller changes nothing of who owns the flows: --controller-managed decides."""
    a, _ = _agent(tmp_path, controller="tcp:10.0.0.1:6653")
    b, _ = _agent(tmp_path, controller="tcp:10.0.0.1:6653", controller_managed=False)
    assert a.node.guard_ports is False and b.node.guard_ports is True
