"""`netfate cluster up`: the scale-out control plane on this machine (issue #15)."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from netfate.cli.common import ascii_int, console, emit_json, guarded, progress

app = typer.Typer(help="The scale-out control plane: orchestrator replicas, a NATS "
                  "cluster, controllers with OpenFlow roles, PostgreSQL", no_args_is_help=True)


@app.command()
def up(
    replicas: Annotated[int, typer.Option(help="Orchestrator replicas (1-9)",
                                          parser=ascii_int(1, 9))] = 3,
    nats: Annotated[int, typer.Option(help="NATS servers: 1, or a cluster of 2-9",
                                      parser=ascii_int(1, 9))] = 3,
    controllers: Annotated[int, typer.Option(help="SDN controllers with OpenFlow roles "
                                                  "(0-9)", parser=ascii_int(0, 9))] = 2,
    db: Annotated[str | None, typer.Option(help="PostgreSQL URL the replicas share "
                                                "(postgresql+psycopg://...); default: a "
                                                "private server on loopback")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the endpoints as JSON")]
    = False,
) -> None:
    """Start the control plane's parts on this machine and keep them running until
    Ctrl-C or SIGTERM; then stop them all. Prints each replica's API, the NATS URLs, the
    controllers' OpenFlow targets (give them to the switches) and the operator token."""
    from netfate.cluster.up import Cluster

    c = guarded(lambda: Cluster(replicas=replicas, nats=nats, controllers=controllers,
                                db_url=db))
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    try:
        with progress(json_out, "cluster up") as say:
            guarded(lambda: c.start(say))
        ep = c.endpoints()
        if json_out:
            emit_json(ep)
        else:
            for k, url in enumerate(ep["api"]):
                console.print(f"replica {ep['replicas'][k]}: {url}")
            console.print(f"NATS: {ep['nats']}\nPostgreSQL: {ep['db']}")
            console.print(f"controllers: {','.join(ep['controllers']) or '-'}")
            console.print(f"operator token: {ep['api_token']}\nrunning; Ctrl-C stops it all")
        done.wait()
    finally:
        c.stop()
