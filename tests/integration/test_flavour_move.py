"""Flavour change on move, on the real data plane (issue #10: state belongs to the NF, not
the flavour). The user's firewall runs natively on their CPE; the CPE is overloaded (a busy
process inside the NF's own cgroup, against the CPE's declared 0.1 CPU), so the engine's
fallback moves the firewall to the DC, where the resolver picks the DC's flavour (container
once the container driver is registered there and the firewall ships a container
implementation; native until then); the source's release ends the busy process, the CPE has
room again and the firewall comes back, native. The user's established TCP connection
survives both moves, and the firewall's rules move with it.

The whole stack runs (orchestrator, controller, agents, FreeRADIUS), one testbed for the
module; everything is torn down after, even on failure."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest

from netfate.drivers import cgroups
from netfate.roaming.session import running_at, wait_for
from netfate.testbed.topology import Topology, parse_topology

from .test_roaming import ALLOWED, DENIED, _stack, connects, logged_in_with_stream

USER = "user1"


def _topology() -> Topology:
    text = resources.files("netfate.testbed").joinpath("default.yaml").read_text()
    # A CPE that a busy NF overloads: 0.1 CPU declared for NFs (the firewall may use 0.5).
    text = text.replace("{name: cpe1, role: cpe, uplink: core}",
                        "{name: cpe1, role: cpe, uplink: core, cpus: 0.1}")
    # The PE above cpe1 has no room either, so the fallback is the DC (the policy's third
    # tier, where the resolver picks the container flavour).
    text = text.replace("{name: core, role: pe}", "{name: core, role: pe, mem_mb: 8}")
    assert "cpus: 0.1" in text and "mem_mb: 8" in text
    return parse_topology(text, "cpe1 with 0.1 CPU")


@pytest.fixture(scope="module")
def stack(testbed_up: None) -> Iterator[httpx.Client]:
    yield from _stack(_topology())


def _instances(api: httpx.Client) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in api.get("/vnf_instances").json()
            if i["owner"] == USER and i["desired_state"] == "present"}


def _expected_dc_flavour(api: httpx.Client) -> str:
    """What the resolver must pick at the DC: container when the DC advertises it and the
    firewall ships it, else native (before the container driver is merged)."""
    dc = next(n for n in api.get("/nodes").json() if n["name"] == "dc")
    fw = [p for p in api.get("/vnf_packages").json() if p["name"] == "firewall"]
    offered = {i["flavour"] for p in fw for i in p["implementations"]}
    hosted = set(dc["infrastructure"].get("flavours") or ["native"])
    return "container" if {"container"} <= offered & hosted else "native"


class Burner:
    """A busy process put in the NF's cgroups (cpu, cpuacct, ...): the CPE's telemetry counts
    it as the NF's CPU. Ended by its PID (the NF's deletion also kills what is in its cgroup)."""

    def __init__(self, iid: str) -> None:
        self.proc = subprocess.Popen(["python3", "-c", "while True: pass"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            files = cgroups.procs_files(iid)
            assert files, "cgroups are not available: the CPE cannot be overloaded"
            for f in files:
                Path(f).write_text(str(self.proc.pid))
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()


def test_native_on_the_cpe_to_the_dc_and_back_keeps_the_connection(
        stack: httpx.Client) -> None:
    api, topo = stack, _topology()
    c1, tcp = logged_in_with_stream(api, topo)
    burner: Burner | None = None
    try:
        first = _instances(api)
        assert {i: (r["node_name"], r["flavour"]) for i, r in first.items()} == {
            "cpe1-user1-firewall": ("cpe1", "native")}
        want = _expected_dc_flavour(api)

        burner = Burner("cpe1-user1-firewall")
        # Overloaded: the engine's fallback migrates the firewall to the DC.
        at_dc = wait_for(lambda: _instances(api).get("dc-user1-firewall"), 60,
                         "the firewall to move to the DC", step=0.05)
        assert at_dc["flavour"] == want, at_dc
        wait_for(lambda: running_at(api, USER) == {"dc-user1-firewall": "dc"}, 30,
                 "the firewall running at the DC only", step=0.05)
        assert tcp.alive, tcp.error
        echoed = tcp.echoed

        # The source's release ended the busy process with its cgroup: room again, and the
        # firewall comes back to the CPE, native.
        wait_for(lambda: running_at(api, USER) == {"cpe1-user1-firewall": "cpe1"}, 60,
                 "the firewall back at cpe1")
        assert _instances(api)["cpe1-user1-firewall"]["flavour"] == "native"
        time.sleep(1)
        assert tcp.alive, tcp.error
        assert tcp.echoed > echoed, "the connection carried data after the second move"
        # The rules moved with it, both ways.
        assert connects(c1, ALLOWED) and not connects(c1, DENIED)
        moves = [o for o in api.get("/vnf_lcm_op_occs").json() if o["operation"] == "MIGRATE"]
        assert len(moves) >= 2 and all(o["operation_state"] == "COMPLETED" for o in moves), moves
    finally:
        tcp.stop()
        if burner is not None:
            burner.stop()
