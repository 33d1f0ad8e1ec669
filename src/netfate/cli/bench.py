"""netfate bench ...: figures as JSON."""

from __future__ import annotations

from typing import Annotated

import typer

from netfate.cli.common import emit_json, guarded, need_root

app = typer.Typer(help="Benchmarks. Each prints JSON with ratios against a same-run baseline.")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (the default output)")]


@app.command("nf-start")
def nf_start(
    runs: Annotated[int, typer.Option(min=5, max=1000)] = 50,
    json_out: JsonOpt = True,
) -> None:
    """create_nf to first forwarded packet through a native firewall, vs bare ruleset load."""
    need_root()
    from netfate.bench.nf_start import run

    emit_json(guarded(lambda: run(runs)))


@app.command()
def density(
    count: Annotated[int, typer.Option(min=1, max=5000)] = 100,
    json_out: JsonOpt = True,
) -> None:
    """N native firewalls created, then deleted: total time and memory per idle NF."""
    need_root()
    from netfate.bench.density import run

    emit_json(guarded(lambda: run(count)))


@app.command()
def throughput(
    seconds: Annotated[int, typer.Option(min=1, max=60)] = 5,
    json_out: JsonOpt = True,
) -> None:
    """iperf3 client to internet host: direct, and through a native firewall."""
    need_root()
    from netfate.bench.throughput import run

    emit_json(guarded(lambda: run(seconds)))
