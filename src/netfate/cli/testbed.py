"""netfate testbed up|down|status|move (and exec|login|shell: cli/testbed_hands.py)"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from netfate import paths
from netfate.cli import testbed_hands
from netfate.cli.common import ascii_int, checked, console, emit_json, guarded, need_root
from netfate.cli.common import settings as load
from netfate.cli.steps import steps
from netfate.testbed.topology import load_topology

app = typer.Typer(help="The emulated edge testbed (OVS switches, hosts in namespaces).")
Opt = typer.Option


@app.command()
def up(
    topology: Annotated[Path | None, Opt(help="Topology YAML [NETFATE_TESTBED_TOPOLOGY; "
                                              "the PoC]")] = None,
    services: Annotated[bool, Opt(help="Start the orchestrator and agents")] = True,
    idle_timeout: Annotated[int | None, Opt(min=0, help="Seconds without packets before a "
                                            "user is released, 0: never "
                                            "[NETFATE_TESTBED_IDLE_TIMEOUT; 30]")] = None,
    reauth_lifetime: Annotated[float | None, Opt(min=0, help="Seconds a session allows "
                                                 "fast re-authentication at another CPE "
                                                 "[NETFATE_TESTBED_REAUTH_LIFETIME; 3600]")]
    = None,
    api_port: Annotated[int | None, Opt(help="The orchestrator's API port "
                                             "[NETFATE_TESTBED_API_PORT; 8181]",
                                        parser=ascii_int(1, 65535))] = None,
    nats_port: Annotated[int | None, Opt(help="The bus's port "
                                              "[NETFATE_TESTBED_NATS_PORT; 4322]",
                                         parser=ascii_int(1, 65535))] = None,
    of_port: Annotated[int | None, Opt(help="The SDN controller's OpenFlow port "
                                            "[NETFATE_TESTBED_OF_PORT; 6693]",
                                       parser=ascii_int(1, 65535))] = None,
    command_timeout: Annotated[float | None, Opt(help="Seconds an agent has to answer the "
                                                      "orchestrator "
                                                      "[NETFATE_TESTBED_COMMAND_TIMEOUT; 10]")]
    = None,
    metrics_port: Annotated[int | None, Opt(help="Prometheus /metrics of the controller "
                                                 "(the agents' follow, one per node; 0: "
                                                 "off) [NETFATE_TESTBED_METRICS_PORT; 9470]")]
    = None,
    json_out: Annotated[bool, Opt("--json", help="Print JSON")] = False,
) -> None:
    """Bring the testbed up: switches, hosts, orchestrator, one agent per node. Idempotent."""
    from netfate.testbed import lifecycle

    need_root()
    tb = load(testbed={
        "topology": topology, "idle_timeout": idle_timeout, "reauth_lifetime": reauth_lifetime,
        "api_port": api_port, "nats_port": nats_port, "of_port": of_port,
        "command_timeout": command_timeout, "metrics_port": metrics_port}).testbed
    topo = guarded(lambda: load_topology(tb.topology))
    n_steps = 2 + len(topo.nodes) * 2 + len(topo.hosts) + sum(n.role == "cpe" for n in topo.nodes)
    # SIGTERM (`timeout`, systemd) ends it as Ctrl-C does: a fresh `up` then removes what it
    # made (it left ~250 links and OVS behind: re-probe of 2026-12-06).
    signal.signal(signal.SIGTERM, _terminated)
    with steps(json_out, "testbed up", n_steps) as say:
        state = guarded(lambda: lifecycle.up(topo, say, services=services, settings=tb))
    if json_out:
        emit_json(state)
    else:
        console.print(
            f"[green]testbed {topo.name} is up[/] in {state['up_seconds']} s: "
            f"{len(topo.nodes)} nodes, {len(topo.hosts)} hosts"
            + (f"; API {tb.api_url}" if services else "")
        )
        if services:
            _print_login(tb.api_url)


def _terminated(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _print_login(api_url: str) -> None:
    """Where the web UI is and how to log in to it (netfate.api_auth)."""
    from netfate import api_auth, paths

    token_file = api_auth.token_path(paths.run_dir() / "orchestrator")
    console.print(f"web UI: [bold]{api_url}/ui/[/]  (log in with the operator token: "
                  + ("NETFATE_API_TOKEN" if load().orchestrator.api_token
                     else f"sudo cat {token_file}") + ")")


@app.command()
def down(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Remove everything the project created (namespaces, links, OVS, cgroups). Always safe."""
    from netfate.testbed import lifecycle

    need_root()
    load()
    with steps(json_out or quiet, "testbed down", 4) as say:
        removed = guarded(lambda: lifecycle.down(say))
    if json_out:
        emit_json(removed)
    elif not quiet:
        console.print(
            f"[green]testbed down[/]: {len(removed['namespaces'])} namespaces, "
            f"{len(removed['links'])} links, {len(removed['cgroups'])} cgroups, "
            f"{len(removed['pids'])} processes ended (PIDs {removed['pids']})"
        )
    if removed.get("kept") and not json_out:
        console.print(f"left {removed['kept']} as it is: it is not a run dir NetFATE "
                          f"made (no {paths.MARKER})")


@app.command()
def status(json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """The topology as a tree: nodes by tier with their ports, hosts, users and NFs."""
    need_root()
    load()
    if json_out:
        emit_json(status_dict())
        return
    print_status()


def status_dict() -> dict[str, Any]:
    """lifecycle.status() and the orchestrator's users (where each is attached)."""
    from netfate.cli.testbed_tree import fetch_users
    from netfate.testbed import lifecycle

    st = guarded(lifecycle.status)
    st["users"] = fetch_users(st.get("api"))
    return st


def print_status() -> None:
    """The testbed as a tree on stdout (nodes by tier, their ports, hosts, users, NFs)."""
    from rich.console import Console

    from netfate.cli.testbed_tree import status_tree

    st = status_dict()
    if not st["up"]:
        console.print("testbed is [yellow]down[/]")
        if st["namespaces"]:
            console.print(f"leftover namespaces: {st['namespaces']} (run 'netfate testbed down')")
        return
    Console().print(status_tree(st))


@app.command()
def move(
    client: Annotated[str, typer.Argument(help="The client host, e.g. client1",
                                          callback=checked("name"))],
    node: Annotated[str, typer.Argument(help="The CPE it moves to, e.g. cpe2",
                                        callback=checked("name"))],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Roam a client to another CPE: its old LAN link goes down, a new one comes up with the
    same MAC (the new node's agent reports it associated)."""
    need_root()
    load()
    from netfate.testbed.move import move as do_move

    out = guarded(lambda: do_move(client, node))
    if json_out:
        emit_json(out)
    elif out["moved"]:
        console.print(f"[green]{client}[/] moved {out['from']} -> {node} in "
                      f"{out['seconds'] * 1000:.1f} ms (same MAC {out['mac']})")
    else:
        console.print(f"{client} is already on {node}")


@app.command("prometheus-config")
def prometheus_config(
    interval: Annotated[float, Opt(help="Scrape interval, seconds")] = 5.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the targets as JSON")]
    = False,
) -> None:
    """Print a prometheus.yml that scrapes the running testbed's processes on loopback
    (orchestrator, SDN controller, agents): `prometheus --config.file=prometheus.yml`."""
    load()
    from netfate.metrics import scrape

    targets = guarded(scrape.recorded)
    if json_out:
        emit_json(targets)
        return
    if interval <= 0:
        console.print(f"[red]error:[/] --interval must be positive, got {interval}")
        raise typer.Exit(2)
    sys.stdout.write(scrape.prometheus_config(targets, interval))


testbed_hands.register(app)
