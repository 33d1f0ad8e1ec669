"""netfate chaos: the fault suite (issue #16) on the testbed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from netfate.cli.common import console, emit_json, guarded, need_root, progress
from netfate.cli.common import settings as load

Opt = typer.Option


def chaos(
    runs: Annotated[int, Opt(min=1, max=1000, help="How many runs (a fresh testbed each)")] = 3,
    seed: Annotated[int, Opt(help="Seeds every run's workload and nemesis")] = 1,
    steps: Annotated[int, Opt(min=1, max=200, help="Workload steps per run")] = 12,
    target: Annotated[list[str] | None, Opt(help="Kill only processes whose name starts "
                                               "with this (repeatable): orchestrator, "
                                               "controller, agent-, access-, nats-server, "
                                               "freeradius, dnsmasq-, or an NF id")] = None,
    replay: Annotated[int | None, Opt(min=0, max=2**31 - 1,
                                      help="Replay one run: the run seed a report names "
                                           "(overrides --runs and --seed)")] = None,
    topology: Annotated[Path | None, Opt(help="Topology YAML [the PoC]")] = None,
    json_out: Annotated[bool, Opt("--json", help="Print the report as JSON")] = False,
) -> None:
    """Logins, roams, idles, chain edits and NF updates while a nemesis kill -9s a random
    process of the testbed and restarts it; then a checker verifies the platform converged.
    Takes the testbed down before and after each run. Exit code 1 if any violation."""
    need_root()
    import signal
    import sys

    from netfate.chaos.runner import ChaosSettings, run_chaos

    # A SIGTERM (a timeout) still takes the testbed down: the runs' finally blocks run.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from netfate.testbed.topology import load_topology

    tb = load(testbed={"topology": topology}).testbed
    topo = guarded(lambda: load_topology(tb.topology))
    with progress(json_out, "chaos") as say:
        cs = ChaosSettings(steps=steps, targets=tuple(target or ()))
        out = guarded(lambda: run_chaos(runs, seed, topo, cs, say, replay=replay))
    if json_out:
        emit_json(out)
    else:
        for r in out["reports"]:
            faults = ", ".join(f"{f['target']} ({f['kind']})" for f in r["faults"]) or "none"
            colour = "red" if r["violations"] else "green"
            console.print(f"run {r['run']} seed {r['seed']}: fault {faults}; "
                          f"[{colour}]{len(r['violations'])} violations[/] "
                          f"(converged in {r['converged_s']} s, run {r['seconds']} s)")
            for v in r["violations"]:
                console.print(f"  [red]-[/] {v}")
        console.print(f"{out['runs']} runs, {out['faults']} faults, "
                      f"{out['violations']} violations")
    if out["violations"]:
        raise typer.Exit(1)
