"""netfate bench ...: figures as JSON."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Annotated, Any

import typer

from netfate.cli.common import emit_json, guarded, need_root, progress
from netfate.cli.common import settings as load

app = typer.Typer(help="Benchmarks. Each prints JSON with ratios against a same-run baseline.")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (the default output)")]


def _bench_run(module: str) -> Callable[..., Any]:
    # Imported late: a bench pulls in drivers and the testbed, which `--help` doesn't need.
    run: Callable[..., Any] = importlib.import_module(f"netfate.bench.{module}").run
    return run


def _run_as_root(module: str, *args: Any, **kwargs: Any) -> None:
    """Print as JSON what `netfate.bench.<module>.run(*args, **kwargs)` measures (needs root)."""
    need_root()
    load()
    run = _bench_run(module)
    emit_json(guarded(lambda: run(*args, **kwargs)))


ReplaceOpt = Annotated[bool, typer.Option(
    "--replace-testbed", help="Take down a running testbed first (this bench brings up one "
    "of its own, with its settings, and takes it down after)")]


def _run_on_testbed(module: str, runs: int, replace: bool = False) -> None:
    """The same for a bench that brings up a testbed of its own (services with its settings)
    and takes it down after, reporting its progress on stderr. A running testbed is taken
    down only with ``replace`` (--replace-testbed); otherwise the bench is refused, changing
    nothing (a probe of 2026-12-06 lost its testbed to `bench login`)."""
    need_root()
    settings = load()
    from netfate.testbed import lifecycle

    if lifecycle.load_state() is not None and not replace:
        typer.echo(f"error: bench {module} brings up a testbed of its own and takes it down "
                   "after: the running testbed would be removed. Run `netfate testbed down` "
                   "first, or pass --replace-testbed.", err=True)
        raise typer.Exit(2)
    run = _bench_run(module)
    with progress(False, f"bench {module}") as say:
        out = guarded(lambda: run(runs, say, testbed=settings.testbed))
    emit_json(out)


@app.command("nf-start")
def nf_start(
    runs: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    pool: Annotated[int, typer.Option(min=0, max=64, help="Pre-made namespaces for the "
                                      "pooled runs (0: cold runs only)")] = 2,
    flavour: Annotated[str, typer.Option(help="The firewall's flavour: native or "
                                         "container")] = "native",
    json_out: JsonOpt = True,
) -> None:
    """create_nf to first forwarded packet through a firewall (cold, then from a pool of
    pre-made namespaces or containers), phase by phase, vs bare ruleset load."""
    if flavour not in ("native", "container"):
        raise typer.BadParameter(f"{flavour!r}: nf-start measures native or container "
                                 "(the VM flavour: `netfate bench vm`)", param_hint="--flavour")
    _run_as_root("nf_start", runs, pool=pool, flavour=flavour)


@app.command()
def flavours(
    runs: Annotated[int, typer.Option(min=1, max=200, help="Starts per flavour")] = 10,
    count: Annotated[int, typer.Option("--density", min=0, max=200,
                                       help="NFs per flavour created and started together")]
    = 10,
    pool: Annotated[int, typer.Option(min=0, max=64, help="Pre-made namespaces/containers "
                                      "for the pooled starts (0: cold only)")] = 2,
    workers: Annotated[int, typer.Option(min=1, max=32, help="Threads creating the "
                                         "density NFs (more than 1 hung once: see "
                                         "README)")] = 1,
    vm: Annotated[bool, typer.Option("--vm", help="Add the VM column (QEMU/TCG boots and a "
                                     "live migration: minutes)")] = False,
    vm_runs: Annotated[int, typer.Option(min=1, max=20, help="VM starts (with --vm)")] = 2,
    settle_ms: Annotated[int, typer.Option(min=0, max=5000, help="Untimed pause before each "
                                           "timed start, so it does not share the node "
                                           "with the previous run's teardown")] = 0,
    json_out: JsonOpt = True,
) -> None:
    """The firewall in each flavour (native, container, and VM with --vm) vs bare: start
    p50/p95 (cold and from a pool), memory per idle NF, disk, density (NNF Table IV, Glasgow
    Fig. 2)."""
    need_root()
    load()
    run = _bench_run("flavours")
    with progress(False, "bench flavours") as say:  # on stderr: the JSON stays clean
        out = guarded(lambda: run(runs, count, say, pool=pool, workers=workers, vm=vm,
                                  vm_runs=vm_runs, settle_ms=settle_ms))
    emit_json(out)


@app.command()
def density(
    count: Annotated[int, typer.Option(min=1, max=5000)] = 100,
    ports: Annotated[bool, typer.Option(help="Attach each NF's ports to the node's LSI")] = True,
    workers: Annotated[int, typer.Option(min=1, max=16, help="NFs created (and deleted) at "
                                         "a time, as an agent converging does")] = 1,
    json_out: JsonOpt = True,
) -> None:
    """N native firewalls created, then deleted: total time and memory per idle NF."""
    _run_as_root("density", count, ports=ports, workers=workers)


@app.command()
def throughput(
    seconds: Annotated[int, typer.Option(min=1, max=60)] = 5,
    json_out: JsonOpt = True,
) -> None:
    """iperf3 client to internet host: direct, and through a native firewall."""
    _run_as_root("throughput", seconds)


@app.command("vm")
def vm(
    runs: Annotated[int, typer.Option(min=1, max=20)] = 3,
    migrations: Annotated[int, typer.Option(min=0, max=20)] = 1,
    cold: Annotated[int, typer.Option(min=0, max=20, help="Starts that boot the guest "
                                      "instead of resuming its template")] = 1,
    json_out: JsonOpt = True,
) -> None:
    """The VM flavour (QEMU/TCG firewall): start time (from the guest template, and cold),
    the native and bare baselines, idle RSS, image size, live migration total time and
    downtime (QEMU's and a probe stream's gap)."""
    _run_as_root("vm_flavour", runs, migrations, cold)


@app.command()
def chain(
    seconds: Annotated[int, typer.Option(min=1, max=60, help="iperf3 seconds per path")] = 2,
    pings: Annotated[int, typer.Option(min=1, max=1000, help="pings per path")] = 50,
    runs: Annotated[int, typer.Option("--runs", min=0, max=20, help="DC failures after the "
                                      "paths (0: none)")] = 1,
    json_out: JsonOpt = True,
) -> None:
    """RTT and throughput with the firewall on the CPE, the PE and in the DC vs plain; then
    the time to re-serve users after the DC their chain crosses fails (kill -9)."""
    need_root()
    settings = load()
    run = _bench_run("chain")
    with progress(False, "bench chain") as say:
        out = guarded(lambda: run(seconds, pings, failover_runs=runs, say=say,
                                  testbed_settings=settings.testbed))
    emit_json(out)


@app.command("control-plane")
def control_plane(
    nodes: Annotated[int, typer.Option(min=2, max=100_000, help="Simulated NFVI nodes")] = 1000,
    users: Annotated[int, typer.Option(min=1, max=1_000_000, help="Users")] = 10000,
    rate: Annotated[float, typer.Option(min=0.1, help="User events per second")] = 500.0,
    duration: Annotated[float, typer.Option(min=0, help="Seconds of roaming after the "
                                                       "logins")] = 60.0,
    telemetry_interval: Annotated[float, typer.Option(help="Seconds between a node's "
                                                           "telemetry reports")] = 2.0,
    idle_fraction: Annotated[float, typer.Option(min=0, max=1, help="Share of roaming-phase "
                                                 "events that are a user going idle")] = 0.1,
    agent_procs: Annotated[int, typer.Option(min=1, max=64, help="Processes for the "
                                             "simulated agents")] = 1,
    agents_per_conn: Annotated[int, typer.Option(min=1, help="Simulated agents per NATS "
                                                 "connection")] = 50,
    users_via: Annotated[str, typer.Option(help="api: POST /users (scrypt, ~50 ms each); db: "
                                           "written into the fresh database before start")]
    = "api",
    warm: Annotated[bool, typer.Option("--warm", help="With --users-via db: users start "
                                       "logged in at their home CPE, firewall placed (no "
                                       "login phase)")] = False,
    op_timeout: Annotated[float, typer.Option(min=1, help="Seconds an operation has to "
                                              "complete")] = 30.0,
    apply_delay_ms: Annotated[float, typer.Option(min=0, help="Simulated agents' time per "
                                                  "command")] = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed of the user events")] = 1,
    profile: Annotated[str | None, typer.Option(help="Run the orchestrator under cProfile, "
                                                "writing this file")] = None,
    db_url: Annotated[str | None, typer.Option(help="The orchestrator's database: an empty "
                                               "PostgreSQL database's URL (default: SQLite "
                                               "in the bench's temp dir)")] = None,
    max_in_flight: Annotated[int | None, typer.Option(min=0, help="The orchestrator's "
                                                      "max_events_in_flight (past it: 429)")]
    = None,
    nats: Annotated[int, typer.Option(min=1, max=9, help="NATS servers: 1 the orchestrator's "
                                      "own; 2-9 a NATS cluster of that many members")] = 1,
    kill_nats_at: Annotated[float | None, typer.Option(
        min=0, help="With --nats >= 2: kill -9 the orchestrator's NATS member this many "
        "seconds into the roaming phase (the fault test of issue #15)")] = None,
    replicas: Annotated[int, typer.Option(min=1, max=9, help="Orchestrator replicas: 1 one "
                                          "orchestrator; 2-9 replicas sharing PostgreSQL "
                                          "(--db-url, or a private server: root) and the "
                                          "bus, the load spread over their APIs")] = 1,
    kill_replica_at: Annotated[float | None, typer.Option(
        min=0, help="With --replicas >= 2: kill -9 the leading replica this many seconds "
        "into the roaming phase")] = None,
    json_out: JsonOpt = True,
) -> None:
    """The orchestrator under N simulated agents and M roaming users: placement latency,
    events/s handled, orchestrator CPU and memory. No root needed."""
    load()
    from netfate.bench.control_plane import Params, run

    p = Params(nodes=nodes, users=users, rate=rate, duration=duration,
               telemetry_interval=telemetry_interval, idle_fraction=idle_fraction,
               agent_procs=agent_procs, agents_per_conn=agents_per_conn, users_via=users_via,
               warm=warm, op_timeout=op_timeout, apply_delay_ms=apply_delay_ms, seed=seed,
               profile=profile, db_url=db_url, max_in_flight=max_in_flight, nats=nats,
               kill_nats_at=kill_nats_at, replicas=replicas, kill_replica_at=kill_replica_at)
    emit_json(guarded(lambda: run(p)))


@app.command()
def handover(
    runs: Annotated[int, typer.Option(min=1, max=500, help="Moves per client")] = 10,
    replace: ReplaceOpt = False,
    json_out: JsonOpt = True,
) -> None:
    """Roam clients between cpe1 and cpe2: probe-stream gap, TCP survival, breakdown; a
    user without NFs is the same-run baseline."""
    _run_on_testbed("handover", runs, replace)


@app.command()
def failover(
    runs: Annotated[int, typer.Option(min=1, max=50, help="Node failures")] = 1,
    replace: ReplaceOpt = False,
    json_out: JsonOpt = True,
) -> None:
    """Kill -9 the agent of the CPE running a user's firewall (and its namespace), move the
    user to the other CPE: time to serve them again through a replacement, and to remove
    the leftovers when the agent returns; a fault-free roam is the same-run baseline."""
    _run_on_testbed("failover", runs, replace)


@app.command()
def login(
    runs: Annotated[int, typer.Option(min=1, max=1000, help="Logins per user")] = 30,
    replace: ReplaceOpt = False,
    json_out: JsonOpt = True,
) -> None:
    """Portal POST to the first packet at the internet host through the user's firewall,
    broken down; a user without NFs is the same-run baseline."""
    _run_on_testbed("login", runs, replace)
