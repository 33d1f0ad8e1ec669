"""What several integration test modules share: the whole stack on a topology with echo
servers on the internet host, a topology written to a file and loaded, and the evidence a
failed test leaves in /tmp."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from netfate import paths
from netfate.api_auth import BearerAuth
from netfate.drivers.ovs import OvsServer
from netfate.roaming.probes import EchoServer
from netfate.testbed import lifecycle, processes
from netfate.testbed.settings import TestbedSettings
from netfate.testbed.topology import Topology, load_topology

INET = "10.255.0.1"
ALLOWED, DENIED = 5201, 2323


def whole_stack(topo: Topology, idle_s: int,
                ports: tuple[int, ...] = (ALLOWED, DENIED)) -> Iterator[httpx.Client]:
    """The whole stack on `topo` (any testbed taken down first), users idle after `idle_s`,
    an echo server on the internet host at each of `ports`; yields the API's client. Torn
    down whatever happens, and the data-plane-only default testbed put back."""
    lifecycle.down()
    api = httpx.Client(base_url=lifecycle.api_url() + "/api/v1", timeout=30,
                       auth=BearerAuth())
    servers: list[EchoServer] = []
    try:
        lifecycle.up(topo, settings=TestbedSettings(idle_timeout=idle_s))
        servers = [EchoServer("fate-h-inet", INET, p) for p in ports]
        yield api
    finally:
        for s in servers:
            s.close()
        api.close()
        lifecycle.down()
        lifecycle.up(load_topology(), services=False)


# whole_stack as a context manager: `with whole_stack_running(topo, idle_s) as api:`.
whole_stack_running = contextlib.contextmanager(whole_stack)


def topology_file(tmp_path_factory: pytest.TempPathFactory, stem: str, text: str) -> Topology:
    """The topology `text`, written to <a new tmp dir `stem`>/`stem`.yaml and loaded."""
    f = Path(tmp_path_factory.mktemp(stem)) / f"{stem}.yaml"
    f.write_text(text)
    return load_topology(f)


def keep_evidence(api: httpx.Client, prefix: str) -> None:
    """For a failed test: the orchestrator's log to /tmp/`prefix`-orch.log (each agent's to
    /tmp/`prefix`-agent-<node>.log), what the API says of operations, instances, steering
    rules and nodes to /tmp/`prefix`-api.json, and the data plane as it is (every switch's
    flows with counters, every NF namespace's nft ruleset with counters) to
    /tmp/`prefix`-dataplane.txt."""
    shutil.copy(processes.pid_dir() / "orchestrator.log", f"/tmp/{prefix}-orch.log")
    for log in processes.pid_dir().glob("agent-*.log"):
        shutil.copy(log, f"/tmp/{prefix}-{log.name}")
    with open(f"/tmp/{prefix}-api.json", "w") as f:
        json.dump({p: api.get(p).json() for p in ("/vnf_lcm_op_occs", "/vnf_instances",
                                                 "/steering_rules", "/nodes")}, f,
                  indent=1)
    with open(f"/tmp/{prefix}-dataplane.txt", "w") as f:
        f.write(_dataplane())


def _dataplane() -> str:
    """What the switches, the datapath and the NFs hold now, as text (best effort): each
    bridge's ports (numbers and names) and flows, the datapath's cached flows, the root
    namespace's project links, and in each namespace its links, bridge ports, nft ruleset
    and conntrack entries."""
    out: list[str] = []
    env = {**os.environ, **OvsServer(paths.ovs_dir()).env}
    status = lifecycle.status()

    def run(title: str, argv: list[str], with_env: bool = False) -> None:
        cp = subprocess.run(argv, env=env if with_env else None, capture_output=True,
                            text=True, timeout=10, check=False)
        out.extend([f"== {title}", cp.stdout + cp.stderr])

    run("datapath flows", ["ovs-appctl", "dpctl/dump-flows", "-m"], True)
    for br in status["bridges"]:
        run(f"ports of {br}", ["ovs-ofctl", "-O", "OpenFlow13", "show", br], True)
        run(f"flows of {br}", ["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", br], True)
    run("links of the root namespace", ["ip", "-d", "-br", "link"])
    for ns in status["namespaces"]:
        inside = ["ip", "netns", "exec", ns]
        run(f"links of {ns}", [*inside, "ip", "-d", "link"])
        run(f"bridge ports of {ns}", [*inside, "bridge", "link"])
        run(f"nft ruleset of {ns}", [*inside, "nft", "list", "ruleset"])
        run(f"conntrack of {ns}", [*inside, "conntrack", "-L"])
    return "\n".join(out)
