"""netfate testbed exec | login | shell: the testbed by hand, as Mininet's CLI does it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from netfate.cli.common import checked, console, emit_json, guarded, need_root
from netfate.cli.common import settings as load


def exec_(
    host: Annotated[str, typer.Argument(help="A testbed host: client1, inet, ...",
                                        callback=checked("name"))],
    cmd: Annotated[list[str] | None, typer.Argument(
        help="The command and its arguments, after --", metavar="-- CMD...")] = None,
) -> None:
    """Run a command on a testbed host (in its namespace; no shell), e.g.
    `netfate testbed exec client1 -- ping -c1 10.255.0.1`. Exits with the command's code."""
    need_root()
    load()
    from netfate.testbed.hands import run_on

    argv = list(cmd or [])
    if argv[:1] == ["--"]:  # click keeps a "--" that follows a positional argument
        argv = argv[1:]
    raise typer.Exit(guarded(lambda: run_on(host, argv)))


def login(
    client: Annotated[str, typer.Argument(help="The client host, e.g. client1",
                                          callback=checked("name"))],
    user: Annotated[str, typer.Argument(help="The user, e.g. user1",
                                        callback=checked("name"))],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True,
                                          help="The user's password (asked if not given)")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """What a person at the captive portal does: DHCP, the portal's login (RADIUS behind
    it), then the address RADIUS gave. Exit code 1 if the login is refused."""
    need_root()
    load()
    from netfate.errors import NetfateError
    from netfate.testbed.hands import login as do_login

    try:
        out = do_login(client, user, password)
    except NetfateError as exc:
        if json_out:
            emit_json({"ok": False, "client": client, "user": user, "error": str(exc)})
        else:
            console.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None
    if json_out:
        emit_json(out)
    else:
        console.print(f"[green]{user} logged in[/] on {client} at {out['node']}: address "
                      f"{out['ip']} (DHCP {out['lease_ms']} ms, portal {out['portal_ms']} ms, "
                      f"renewal {out['renew_ms']} ms)")


def shell() -> None:
    """An interactive prompt with exec, login, move, status, up and down; tab completes
    verbs, hosts and nodes."""
    need_root()
    load()
    from netfate.cli.testbed_shell import TestbedShell

    TestbedShell().cmdloop()


def register(app: typer.Typer) -> None:
    app.command("exec")(exec_)
    app.command()(login)
    app.command()(shell)
