"""Simulated node agents for `netfate bench control-plane`: real NATS clients, many logical
agents per process, no data plane.

Each simulated node registers like `netfate agent` (a Register request on the register
subject), sends telemetry periodically (with the NFs it runs), and answers the orchestrator's
commands at once, like the agent of a fast node: `apply` converges to the desired state in no
time and reports every desired instance running; `export_state(s)`/`import_state` succeed.

Run as ``python -m netfate.bench.sim_agents --nats URL --first 0 --count 500 ...``; on SIGTERM
or SIGINT it closes its connections and writes its counters as JSON to ``--stats``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import nats.errors
from nats.aio.msg import Msg

from netfate import __version__
from netfate.agent.registration import Backoff, RegistrationRefused, parse_reply
from netfate.bus import subjects
from netfate.bus.urls import servers
from netfate.flavours import DEFAULT_FLAVOUR

log = logging.getLogger("netfate.bench.sim_agents")

# A node's simulated capacity, by role: (memory MB, CPU utilisation when idle). Sized so the
# target's ~11 firewalls per CPE (16 MB each) stay well under the engine's thresholds.
CAPACITY = {"cpe": (2048, 0.05), "pe": (8192, 0.05), "dc": (65536, 0.05)}
BASE_USED_MB = 256
NF_MB = 16
CAPABILITIES = sorted(["nftables", "conntrack", "bridge", "iproute2", "python3", "tc", "bash"])
# The state a firewall exports (ruleset and conntrack entries), small and constant.
EXPORTED = {"format": 1, "ruleset": "", "conntrack": []}

# What a simulated node advertises: it runs no driver, and acts as a native one would.
SIM_FLAVOURS = [DEFAULT_FLAVOUR]


def node_names(nodes: int) -> list[tuple[str, str]]:
    """(name, role) of each simulated node: ~2% DC (at least one), ~8% PE, the rest CPE."""
    dcs = max(1, nodes // 50)
    pes = nodes // 12 if nodes >= 12 else 0
    cpes = nodes - dcs - pes
    if cpes < 1:
        raise ValueError("need at least 2 nodes: one DC and one CPE")
    out = [(f"dc{i + 1}", "dc") for i in range(dcs)]
    out += [(f"pe{i + 1}", "pe") for i in range(pes)]
    out += [(f"cpe{i + 1}", "cpe") for i in range(cpes)]
    return out


@dataclass
class Counters:
    registered: int = 0
    register_retries: int = 0
    register_refused: int = 0  # answered as a refusal (and retried), never taken as registered
    telemetry: int = 0
    commands: dict[str, int] = field(default_factory=dict)
    bad_commands: int = 0
    command_handler_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"registered": self.registered, "register_retries": self.register_retries,
                "register_refused": self.register_refused,
                "telemetry_sent": self.telemetry, "commands": dict(self.commands),
                "bad_commands": self.bad_commands,
                "command_handler_ms_total": round(self.command_handler_s * 1000, 1)}


class SimNode:
    """One logical agent: its node's desired instances, answered as running."""

    def __init__(self, name: str, role: str, nc: Any, counters: Counters,
                 apply_delay: float) -> None:
        self.name = name
        self.role = role
        self.nc = nc
        self.counters = counters
        self.apply_delay = apply_delay
        self.instances: list[dict[str, Any]] = []
        self.generation = 0
        mem, cpu = CAPACITY[role]
        self.mem_total = mem
        self.cpu = cpu + random.uniform(0, 0.05)  # a load figure, not a secret

    def running(self) -> list[dict[str, Any]]:
        return [{"instance_id": i["instance_id"], "nf_name": i["nf_name"], "owner": i["owner"],
                 "state": "running", "bundle_sha256": i["bundle_sha256"]}
                for i in self.instances]

    def resources(self) -> dict[str, Any]:
        used = BASE_USED_MB + NF_MB * len(self.instances)
        return {"mem_total_mb": self.mem_total, "mem_free_mb": max(0, self.mem_total - used),
                "cpu_util": round(self.cpu, 3), "nf_count": len(self.instances)}

    def register_msg(self) -> bytes:
        return json.dumps({
            "node": self.name, "role": self.role, "capabilities": CAPABILITIES,
            "infrastructure": {"arch": "x86_64", "flavours": SIM_FLAVOURS,
                               "switch": "openvswitch-netdev", "simulated": True},
            "resources": self.resources(), "agent_version": f"{__version__}-sim",
        }).encode()

    def telemetry_msg(self) -> bytes:
        return json.dumps({
            "node": self.name, "ts": time.time(), "resources": self.resources(),
            "nfs": self.running(), "clients": 0, "generation": self.generation,
        }).encode()

    def take_desired(self, desired: dict[str, Any] | None) -> None:
        if desired is not None:
            self.instances = list(desired.get("instances") or [])
            self.generation = int(desired.get("generation") or 0)

    async def register(self, stop: asyncio.Event) -> None:
        backoff = Backoff()
        while True:
            if stop.is_set():
                return
            try:
                reply = await self.nc.request(subjects.REGISTER, self.register_msg(), timeout=15)
                cmd = parse_reply(reply.data)
                break
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError, TimeoutError):
                self.counters.register_retries += 1
            except RegistrationRefused as exc:
                self.counters.register_refused += 1
                log.warning("simulated agent %s: registration refused: %s", self.name, exc)
            await asyncio.sleep(backoff.next())
        self.take_desired(cmd.desired.model_dump(mode="json") if cmd.desired else None)
        self.counters.registered += 1

    async def on_command(self, msg: Msg) -> None:
        t0 = time.perf_counter()
        try:
            cmd = json.loads(msg.data)
            op = cmd.get("op")
        except ValueError:
            self.counters.bad_commands += 1
            return
        c = self.counters.commands
        c[op] = c.get(op, 0) + 1
        if self.apply_delay and op in ("apply", "export_state", "export_states",
                                       "import_state"):
            await asyncio.sleep(self.apply_delay)
        if op == "apply":
            self.take_desired(cmd.get("desired"))
            reply: dict[str, Any] = {"ok": True, "nfs": self.running()}
        elif op == "export_state":
            reply = {"ok": True, "data": EXPORTED}
        elif op == "export_states":
            ids = [i for i in cmd.get("instance_ids") or [] if isinstance(i, str)]
            reply = {"ok": True, "data": {"states": {i: EXPORTED for i in ids},
                                          "errors": {}, "left": []}}
        elif op in ("import_state", "ping", "settle"):
            reply = {"ok": True}
        elif op == "status":
            reply = {"ok": True, "nfs": self.running()}
        else:
            self.counters.bad_commands += 1
            reply = {"ok": False, "error": f"bad command {op!r}"}
        if msg.reply:
            await msg.respond(json.dumps(reply).encode())
        self.counters.command_handler_s += time.perf_counter() - t0


async def run(nats_url: str, nodes: list[tuple[str, str]], per_conn: int,
              telemetry_interval: float, apply_delay: float, register_concurrency: int,
              stop: asyncio.Event, ready: Path | None = None) -> Counters:
    counters = Counters()
    conns: list[Any] = []
    sims: list[SimNode] = []
    try:
        for k in range(0, len(nodes), per_conn):
            nc = await nats.connect(servers(nats_url), name=f"sim-agents-{k}",
                                    max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                    pending_size=64 * 1024 * 1024)
            conns.append(nc)
            for name, role in nodes[k:k + per_conn]:
                sim = SimNode(name, role, nc, counters, apply_delay)
                await nc.subscribe(subjects.command(name), cb=sim.on_command)
                sims.append(sim)
        for nc in conns:
            await nc.flush()
        gate = asyncio.Semaphore(register_concurrency)

        async def register(sim: SimNode) -> None:
            async with gate:
                await sim.register(stop)

        await asyncio.gather(*(register(s) for s in sims))
        if stop.is_set():
            return counters
        if ready is not None:
            ready.write_text(json.dumps({"registered": counters.registered}))
        await _telemetry(sims, counters, telemetry_interval, stop)
    finally:
        for nc in conns:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 2)
    return counters


async def _telemetry(sims: list[SimNode], counters: Counters, interval: float,
                     stop: asyncio.Event) -> None:
    """Each node reports every `interval` s; the nodes' reports are spread over the interval."""
    if interval <= 0 or not sims:
        await stop.wait()
        return
    tick = 0.05
    per_tick = len(sims) * tick / interval
    owed = 0.0
    i = 0
    while not stop.is_set():
        owed += per_tick
        while owed >= 1.0:
            sim = sims[i % len(sims)]
            i += 1
            owed -= 1.0
            with contextlib.suppress(Exception):
                await sim.nc.publish(subjects.telemetry(sim.name), sim.telemetry_msg())
                counters.telemetry += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), tick)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--nats", required=True)
    p.add_argument("--nodes", type=int, required=True, help="total nodes of the benchmark")
    p.add_argument("--first", type=int, default=0, help="index of this process's first node")
    p.add_argument("--count", type=int, default=None, help="how many nodes this process runs")
    p.add_argument("--per-conn", type=int, default=50, help="logical agents per NATS connection")
    p.add_argument("--telemetry-interval", type=float, default=2.0)
    p.add_argument("--apply-delay-ms", type=float, default=0.0)
    p.add_argument("--register-concurrency", type=int, default=64)
    p.add_argument("--stats", type=Path, required=True)
    p.add_argument("--ready", type=Path, default=None)
    a = p.parse_args(argv)
    everyone = node_names(a.nodes)
    mine = everyone[a.first:a.first + (a.count if a.count is not None else len(everyone))]

    async def amain() -> Counters:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await run(a.nats, mine, max(1, a.per_conn), a.telemetry_interval,
                         a.apply_delay_ms / 1000, a.register_concurrency, stop, a.ready)

    counters = asyncio.run(amain())
    a.stats.write_text(json.dumps(counters.as_dict()))


if __name__ == "__main__":
    main()
