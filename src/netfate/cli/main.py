"""The `netfate` command."""

from __future__ import annotations

import typer

from netfate.cli import bench, client, nf, services, testbed

app = typer.Typer(
    help="NetFATE: network functions at the edge that follow their users.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(testbed.app, name="testbed")
app.add_typer(nf.app, name="nf")
app.add_typer(bench.app, name="bench")
app.command()(services.orchestrator)
app.command()(services.agent)
client.register(app)


@app.command()
def demo(
    keep: bool = typer.Option(False, "--keep", help="Leave the testbed up afterwards"),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary"),
) -> None:
    """The main job: the testbed, one NF, and real traffic through it."""
    from netfate.demo import run_demo

    run_demo(keep=keep, json_out=json_out)


if __name__ == "__main__":
    app()
