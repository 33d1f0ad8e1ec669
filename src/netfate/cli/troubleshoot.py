"""`netfate troubleshoot USER`: where is it broken? (through the orchestrator's
POST /api/v1/troubleshoot, or --direct on the testbed's data plane: netfate.troubleshoot.ask)
and `netfate scenario troubleshoot`'s report (on the data plane)."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import typer
from rich.table import Table

from netfate.cli.common import ascii_int, console, emit_json, guarded, need_root, results, settings


def troubleshoot(
    user: str = typer.Argument(None, help="The user (orchestrator: a user's name; --direct: "
                               "their device, a client host of the testbed)"),
    dest: str = typer.Option(None, "--dest", help="Destination IPv4 (orchestrator: instead of "
                             "a user; --direct: default the internet host)"),
    port: int = typer.Option(None, "--port", parser=ascii_int(1, 65535),
                             help="The user's flow is TCP to this port (default: any)"),
    seconds: int = typer.Option(3, "--seconds", parser=ascii_int(1, 30),
                                help="Each probe's capture duration"),
    timeout: int = typer.Option(25, "--timeout", parser=ascii_int(1, 120),
                                help="The whole question's bound, seconds"),
    direct: bool = typer.Option(False, "--direct", help="Ask on the testbed's data plane "
                                "yourself, without the orchestrator (a testbed up with "
                                "--no-services; the probes are spliced into the user's path)"),
    json_out: bool = typer.Option(False, "--json", help="Print the whole report as JSON"),
) -> None:
    """Ask where the user's traffic stops: operator probes at their CPE, the PE and the DC
    ping, trace and capture; the user's NFs' counters are read; the probes are removed.
    By default through the orchestrator (POST /api/v1/troubleshoot: the probes are NF
    instances of the operator, deployed through the agents); --direct on a testbed up
    without services (`netfate testbed up --no-services`)."""
    if direct:
        if user is None:
            raise typer.BadParameter("--direct needs the user's device", param_hint="USER")
        rep = _direct(user, dest, port, seconds, timeout)
    else:
        rep = _through_orchestrator(user, dest, port, seconds, timeout)
    if json_out:
        emit_json(rep)
    else:
        console.print(rep["summary"], markup=False, highlight=False)
    if rep["left_behind"]:
        raise typer.Exit(1)


def _direct(user: str, dest: str | None, port: int | None, seconds: int,
            timeout: int) -> dict[str, Any]:
    need_root()
    settings()
    from netfate.testbed.context import Testbed
    from netfate.troubleshoot.ask import Question, ask

    def go() -> dict[str, Any]:
        with Testbed.attach() as tb:
            with console.status("troubleshoot: asking", spinner="dots") as st:
                return ask(tb, Question(user, dest, port, seconds=seconds,
                                                 timeout_s=float(timeout)),
                           lambda m: st.update(f"troubleshoot: {m}"))

    return guarded(go)


def _through_orchestrator(user: str | None, dest: str | None, port: int | None,
                          seconds: int, timeout: int) -> dict[str, Any]:
    """POST the question, follow its occurrence to the end; its report. Exit 1 if it
    failed (the orchestrator's problem printed)."""
    from netfate.cli.client import call

    body: dict[str, Any] = {"seconds": seconds, "timeout_s": timeout}
    body.update({k: v for k, v in (("user", user), ("destination", dest), ("port", port))
                 if v is not None})
    op = call("POST", "/troubleshoot", json=body)
    deadline = time.monotonic() + timeout + 90  # its bound, the probes' deploy and removal
    with console.status(f"troubleshoot {op['id'][:8]}: asking", spinner="dots") as st:
        while op["operation_state"] == "PROCESSING" and time.monotonic() < deadline:
            time.sleep(0.5)
            op = call("GET", f"/troubleshoot/{op['id']}")
            if op["steps"]:
                st.update(f"troubleshoot {op['id'][:8]}: {op['steps'][-1]}")
    if op["operation_state"] != "COMPLETED" or op["report"] is None:
        err = op.get("error") or {}
        console.print(f"[red]troubleshoot {op['id']} {op['operation_state']}:[/] "
                      f"{err.get('detail', 'no report')}"
                      + (f"; left behind: {op['left_behind']}" if op["left_behind"] else ""))
        raise typer.Exit(1)
    rep: dict[str, Any] = op["report"]
    return rep


def scenario(json_out: bool, keep: bool) -> bool:
    """`netfate scenario troubleshoot`: run it, print its timeline and figures; ok?"""
    from netfate.scenarios import troubleshoot as ts

    def say(t: float, msg: str) -> None:
        if not json_out:
            console.print(f"[dim]t+{t:6.2f}s[/] {msg}", markup=True, highlight=False)

    with console.status("troubleshoot: running", spinner="dots"):
        res = guarded(lambda: ts.run(ts.Options(), say, keep=keep))
    if json_out:
        emit_json(asdict(res))
        return res.ok
    t = Table(title="troubleshoot: figures")
    for col in ("question", "time to report", "points", "verdict", "stops at"):
        t.add_column(col)
    for label, q in res.figures.get("questions", {}).items():
        t.add_row(label, f"{q['time_to_report_s']:.2f} s", str(q["points"]), q["verdict"],
                  str(q["stops_at"] or "-"))
    results.print(t)
    for label, rep in res.reports.items():
        console.print(f"[bold]{label}[/]")
        console.print(rep["summary"], markup=False, highlight=False)
    for check, ok in res.checks.items():
        console.print(f"{'[green]ok[/]' if ok else '[red]FAILED[/]'}  {check}")
    return res.ok
