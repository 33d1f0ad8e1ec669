"""`netfate scenario NAME`: the papers' use cases, run on the testbed with real traffic."""

from __future__ import annotations

from dataclasses import asdict

import typer
from rich.table import Table

from netfate.cli.common import ascii_int, console, emit_json, guarded, need_root, settings

SCENARIOS = ("ddos",)


def scenario(
    name: str = typer.Argument(..., help=f"One of: {', '.join(SCENARIOS)}"),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON"),
    keep: bool = typer.Option(False, "--keep", help="Leave the testbed up afterwards"),
    rate: int = typer.Option(3000, "--rate", parser=ascii_int(100, 100_000),
                             help="ddos: packets per second per attacking device"),
    attackers: int = typer.Option(2, "--attackers", parser=ascii_int(1, 3),
                                  help="ddos: how many of the four devices attack"),
    flood_pps: int = typer.Option(1000, "--flood-pps", parser=ascii_int(100, 100_000),
                                  help="ddos: the packet inspector's flood threshold"),
    attack_s: int = typer.Option(5, "--attack-seconds", parser=ascii_int(2, 120),
                                 help="ddos: how long the attack lasts"),
) -> None:
    """Run a scenario: bring up what it needs, run it with real traffic, print its
    timeline, check its outcome and report its figures (exit 1 if a check fails)."""
    if name not in SCENARIOS:
        console.print(f"[red]error:[/] no scenario {name!r}; there are: {', '.join(SCENARIOS)}")
        raise typer.Exit(2)
    need_root()
    settings()
    from netfate.scenarios import ddos

    opts = ddos.Options(rate=rate, attackers=attackers, flood_pps=flood_pps,
                        attack_s=float(attack_s))

    def say(t: float, msg: str) -> None:
        if not json_out:
            console.print(f"[dim]t+{t:6.2f}s[/] {msg}")

    with console.status("ddos: running", spinner="dots"):
        res = guarded(lambda: ddos.run(opts, say, keep=keep))
    if json_out:
        emit_json(asdict(res))
    else:
        _report(res)
    if not res.ok:
        raise typer.Exit(1)


def _report(res: object) -> None:
    from netfate.scenarios.ddos import TARGET_S, Result

    assert isinstance(res, Result)
    f = res.figures
    t = Table(title="ddos: figures")
    t.add_column("figure")
    t.add_column("value", justify="right")
    for dev, s in f.get("notification_s", {}).items():
        t.add_row(f"attack start -> notification ({dev})", f"{s:.3f} s")
    for dev, s in f.get("rules_installed_s", {}).items():
        t.add_row(f"attack start -> rules installed ({dev})", f"{s:.3f} s")
    a = f.get("attack_pps_at_victim", {})
    t.add_row("attack packets/s at the victim, before", f"{a.get('before', 0):.0f}")
    t.add_row("attack packets/s at the victim, after", f"{a.get('after', 0):.0f}")
    lk = f.get("legit_kbyte_s", {})
    for k in ("before", "during", "after"):
        t.add_row(f"legitimate stream, {k} (kB/s)", f"{lk.get(k, 0):.0f}")
    console.print(t)
    for check, ok in res.checks.items():
        console.print(f"{'[green]ok[/]' if ok else '[red]FAILED[/]'}  {check}")
    verdict = "[green]met[/]" if res.target_met else "[yellow]not met[/]"
    console.print(f"target: mitigation within {TARGET_S:.0f} s of the attack's start: {verdict}")
