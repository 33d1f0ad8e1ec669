"""One chaos run: a fresh testbed, the workload with one fault injected at a random moment,
the checker, `testbed down` and the check that nothing is left. `run_chaos` does N of them
with seeds derived from one, so a failing run is replayed with its own seed."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from netfate.api_auth import BearerAuth
from netfate.chaos import checker, nemesis
from netfate.chaos.workload import ALLOWED, DENIED, EXTRA, INET, Workload
from netfate.roaming.probes import EchoServer
from netfate.testbed import lifecycle
from netfate.testbed.settings import TestbedSettings
from netfate.testbed.topology import Topology, load_topology

Say = Callable[[str], None]


@dataclass(frozen=True)
class ChaosSettings:
    """`steps` workload steps `pause` s apart; the fault at a random step; `settle` s
    beyond the idle timeout for the checker. `idle_timeout` s (short: idles end in a run)."""

    steps: int = 12
    pause: float = 1.0
    idle_timeout: int = 6
    settle: float = 45.0
    down_steps: int = 3  # the most workload steps run while the killed process is dead
    targets: tuple[str, ...] = ()  # only targets whose name starts with one of these


@dataclass
class RunReport:
    run: int
    seed: int
    faults: list[nemesis.Fault] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    converged_s: float | None = None
    seconds: float = 0.0


def _noop(_: str) -> None:
    pass


def one_run(k: int, seed: int, topo: Topology, cs: ChaosSettings, say: Say = _noop
            ) -> RunReport:
    rng = random.Random(seed)
    rep = RunReport(k, seed)
    t0 = time.monotonic()
    tb = TestbedSettings(idle_timeout=cs.idle_timeout)
    lifecycle.down()
    servers: list[EchoServer] = []
    api = httpx.Client(base_url=tb.api_url + "/api/v1", timeout=15, auth=BearerAuth())
    work: Workload | None = None
    try:
        say(f"run {k} (seed {seed}): testbed up")
        lifecycle.up(topo, settings=tb)
        servers = [EchoServer("fate-h-inet", INET, p) for p in (ALLOWED, DENIED, EXTRA)]
        work = Workload(topo, api, rng)
        work.setup()
        fault_step = rng.randrange(cs.steps)
        back_step = fault_step + rng.randint(0, cs.down_steps)
        fault: nemesis.Fault | None = None
        for n in range(max(cs.steps, back_step + 1)):
            if n == fault_step:
                fault = _kill(topo, rng, cs, time.monotonic() - t0, say)
                rep.faults.append(fault)
            if n == back_step and fault is not None:
                _revive(topo, tb, fault, time.monotonic() - t0, say)
            # The workload goes on while the process is dead: its events must not be lost.
            s = work.step(time.monotonic() - t0)
            say(f"run {k}: {s.kind} {s.user} {'ok' if s.ok else 'failed'} {s.detail}")
            time.sleep(rng.uniform(0, cs.pause))
        say(f"run {k}: checking (up to {cs.idle_timeout + cs.settle:g} s to converge)")
        rep.violations, rep.converged_s = checker.converge(
            api, topo, work.users, cs.idle_timeout + cs.settle)
        rep.steps = [asdict(s) for s in work.log]
    finally:
        if work is not None:
            work.stop()
        for srv in servers:
            srv.close()
        api.close()
        lifecycle.down()
    rep.violations += [f"left after testbed down: {x}" for x in checker.leftovers()]
    rep.seconds = round(time.monotonic() - t0, 1)
    return rep


def _kill(topo: Topology, rng: random.Random, cs: ChaosSettings, at: float,
          say: Say) -> nemesis.Fault:
    target = nemesis.pick(topo, rng, cs.targets)
    if target is None:
        return nemesis.Fault("none", "none", 0, at, 0.0, [], "no recorded process runs")
    error: str | None = None
    try:
        if not nemesis.kill(target):  # returns once the target is dead
            error = "it had already exited"
    except nemesis.StillAlive as exc:
        error = str(exc)
    say(f"nemesis: kill -9 {target.name} (pid {target.record.pid})")
    return nemesis.Fault(target.name, target.kind, target.record.pid, round(at, 2), 0.0, [],
                         error)


def _revive(topo: Topology, tb: TestbedSettings, fault: nemesis.Fault, at: float,
            say: Say) -> None:
    fault.down_s = round(at - fault.at, 2)
    try:
        fault.restarted = nemesis.revive(topo, tb)
    except Exception as exc:  # a process that does not come back is a finding
        fault.error = f"restart failed: {type(exc).__name__}: {exc}"[:500]
    say(f"nemesis: restarted {fault.restarted or 'nothing'} after {fault.down_s} s"
        + (f": {fault.error}" if fault.error else ""))


def run_seeds(runs: int, seed: int) -> list[int]:
    """The seeds of `runs` runs under `seed`: run k's is drawn from (seed, k), so run k of
    a soak is replayed with `netfate chaos --replay <its seed>` (the report names it)."""
    return [random.Random(f"{seed}:{k}").randrange(2**31) for k in range(runs)]


def run_chaos(runs: int, seed: int, topo: Topology | None = None,
              cs: ChaosSettings | None = None, say: Say = _noop,
              replay: int | None = None) -> dict[str, Any]:
    """`runs` runs, run k seeded with (seed, k); or, with `replay`, one run with that run
    seed. A summary with every run's report."""
    topo = topo or load_topology()
    cs = cs or ChaosSettings()
    nemesis.check_targets(topo, cs.targets)  # before anything is taken down or started
    reports = []
    seeds = [replay] if replay is not None else run_seeds(runs, seed)
    runs = len(seeds)
    for k, run_seed in enumerate(seeds):
        rep = one_run(k, run_seed, topo, cs, say)
        for f in rep.faults:
            if f.error and "restart failed" in f.error:
                rep.violations.append(f"{f.target}: {f.error}")
        reports.append(rep)
        say(f"run {k}: {len(rep.violations)} violations in {rep.seconds} s")
    return {
        "runs": runs, "seed": seed,
        "faults": sum(len(r.faults) for r in reports),
        "violations": sum(len(r.violations) for r in reports),
        "reports": [asdict(r) for r in reports],
    }
