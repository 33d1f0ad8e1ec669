"""The `netfate` command."""

from __future__ import annotations

import typer

from netfate.cli import (
    access,
    bench,
    chaos,
    client,
    cluster,
    images,
    nf,
    scenario,
    services,
    testbed,
    troubleshoot,
)

app = typer.Typer(
    help="NetFATE: network functions at the edge that follow their users.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(testbed.app, name="testbed")
app.add_typer(nf.app, name="nf")
app.add_typer(bench.app, name="bench")
app.add_typer(access.app, name="access")
app.add_typer(images.app, name="images")
app.add_typer(cluster.app, name="cluster")
app.command()(services.orchestrator)
app.command()(services.agent)
app.command()(services.controller)
app.command()(chaos.chaos)
app.command()(scenario.scenario)
app.command()(troubleshoot.troubleshoot)
client.register(app)


@app.command()
def demo(
    keep: bool = typer.Option(False, "--keep", help="Leave the testbed up afterwards"),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary"),
) -> None:
    """The main job: users log in, their firewalls are placed, real traffic crosses them."""
    from netfate.cli.common import need_root, settings
    from netfate.demo import run_demo

    need_root()
    testbed = settings().testbed
    if not run_demo(keep=keep, json_out=json_out, testbed=testbed)["ok"]:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
