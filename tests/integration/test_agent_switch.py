"""`netfate agent --controller` on the real OVS: the agent's switch gets the controller
targets and the node's datapath id (the one a controller maps to the node), and keeps them
when the agent starts again. Uses the testbed's OVS (data plane only) and a bridge of its
own; no controller needs to be listening."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from netfate.agent.service import Agent
from netfate.bus.messages import Command, Reply
from netfate.controller.pipeline import ovs_datapath_id
from netfate.ports import free_port
from netfate.testbed.context import Testbed

NODE = "ctla1"


def _vsctl(tb: Testbed, *args: str) -> str:
    return subprocess.run(["ovs-vsctl", f"--db=unix:{tb.server.db_sock}", *args],
                          capture_output=True, text=True, check=True, timeout=20).stdout.strip()


def test_agent_gives_its_switch_the_controllers_and_the_nodes_datapath_id(
        tb: Testbed, tmp_path: Path) -> None:
    targets = [f"tcp:127.0.0.1:{free_port()}", f"tcp:127.0.0.1:{free_port()}"]
    a = Agent(NODE, "cpe", "nats://127.0.0.1:4222", tmp_path, tb.server, flavours=["native"],
              controller=",".join(targets))
    a._collect_garbage = list  # type: ignore[method-assign]  # not this test's business
    br = a.node.lsi
    try:
        for _ in range(2):  # an agent's restart leaves it as it was
            asyncio.run(a.network_ready())
            assert sorted(_vsctl(tb, "get-controller", br).split()) == sorted(targets)
            dpid = ovs_datapath_id(NODE)
            assert _vsctl(tb, "get", "Bridge", br, "other_config:datapath-id") == f'"{dpid}"'
            assert _vsctl(tb, "get", "Bridge", br, "datapath_id") == f'"{dpid}"'  # in use
    finally:
        a.network.delete_lsi(br)
        a.network.close()


def test_settle_answers_at_once_even_while_the_node_is_busy(
        tb: Testbed, tmp_path: Path) -> None:
    """Switches.settle: before a core stops anchoring a user, the visited CPE's agent purges
    its datapath's cached flows and replies. It does not queue behind a node operation (an
    NF being created holds the agent's lock for seconds)."""
    a = Agent(NODE, "cpe", "nats://127.0.0.1:4222", tmp_path, tb.server, flavours=["native"])

    async def busy_then_settle() -> Reply:
        async with a._lock:  # a long node operation in progress
            return await asyncio.wait_for(a._handle(Command(op="settle")), 5)

    try:
        assert asyncio.run(busy_then_settle()).ok
    finally:
        a.network.close()
