"""`netfate scenario NAME`: the papers' use cases, run on the testbed with real traffic."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any, ClassVar, Protocol

import typer
from rich.table import Table

from netfate.cli.common import ascii_int, console, emit_json, guarded, need_root, results, settings
from netfate.scenarios.timeline import Say

SCENARIOS = ("ddos", "troubleshoot", "vpn")


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
    flood_window_ms: int = typer.Option(250, "--flood-window-ms", parser=ascii_int(50, 1000),
                                        help="ddos: the window over which the inspector "
                                        "measures a source's rate"),
    attack_s: int = typer.Option(5, "--attack-seconds", parser=ascii_int(2, 120),
                                 help="ddos: how long the attack lasts"),
    runs: int = typer.Option(3, "--runs", parser=ascii_int(1, 10),
                             help="vpn: iperf3 runs per figure (the paper: 10)"),
    seconds: int = typer.Option(3, "--seconds", parser=ascii_int(1, 30),
                                help="vpn: seconds per iperf3 run"),
    mtu: int = typer.Option(1400, "--mtu", parser=ascii_int(576, 8900),
                            help="vpn: the tunnel's MTU (TCP MSS = MTU - 40)"),
    suites: str = typer.Option("aes128-sha1,aes128gcm16", "--suites",
                               help="vpn: ESP suites, comma-separated: aes128-sha1, aes128gcm16"),
    roam: bool = typer.Option(True, "--roam/--no-roam", help="vpn: the roaming part"),
    flavours: str = typer.Option("", "--flavours",
                                 help="vpn: flavours to measure beside bare, comma-separated: "
                                 "native, container, vm (default: every one the CPE hosts "
                                 "and the NF offers)"),
) -> None:
    """Run a scenario: bring up what it needs, run it with real traffic, print its
    timeline, check its outcome and report its figures (exit 1 if a check fails)."""
    if name not in SCENARIOS:
        console.print(f"[red]error:[/] no scenario {name!r}; there are: {', '.join(SCENARIOS)}")
        raise typer.Exit(2)
    need_root()
    settings()
    if name == "troubleshoot":
        from netfate.cli import troubleshoot

        if not troubleshoot.scenario(json_out, keep):
            raise typer.Exit(1)
        return
    if name == "vpn":
        _vpn(json_out, keep, runs, seconds, mtu, tuple(suites.split(",")), roam,
             tuple(f for f in flavours.split(",") if f) or None)
        return
    from netfate.scenarios import ddos

    opts = ddos.Options(rate=rate, attackers=attackers, flood_pps=flood_pps,
                        flood_window_ms=flood_window_ms, attack_s=float(attack_s))
    _run("ddos", json_out, lambda say: ddos.run(opts, say, keep=keep), _report)


class _Outcome(Protocol):
    """What a scenario's `run` returns: a dataclass (printed whole by --json) with `ok`."""

    __dataclass_fields__: ClassVar[dict[str, Any]]
    ok: bool


def _run(name: str, json_out: bool, run: Callable[[Say], _Outcome],
         report: Callable[[object], None]) -> None:
    """Run scenario `name` (`run(say)`, under a spinner, its NetfateError one line and exit
    1), its timeline printed as it goes; then its result as JSON (--json) or by `report`.
    Exit 1 if the scenario is not ok."""
    def say(t: float, msg: str) -> None:
        if not json_out:  # --json: the timeline is in the document (its "timeline")
            console.print(f"[dim]t+{t:6.2f}s[/] {msg}")

    with console.status(f"{name}: running", spinner="dots"):
        res = guarded(lambda: run(say))
    if json_out:
        emit_json(asdict(res))
    else:
        report(res)
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
    for dev, s in f.get("notification_at_orchestrator_s", {}).items():
        t.add_row(f"attack start -> notification at the orchestrator ({dev})", f"{s:.3f} s")
    for dev, s in f.get("rules_installed_s", {}).items():
        t.add_row(f"attack start -> rules installed ({dev})", f"{s:.3f} s")
    a = f.get("attack_pps_at_victim", {})
    t.add_row("attack packets/s at the victim, before", f"{a.get('before', 0):.0f}")
    t.add_row("attack packets/s at the victim, after", f"{a.get('after', 0):.0f}")
    lk = f.get("legit_kbyte_s", {})
    for k in ("before", "during", "after"):
        t.add_row(f"legitimate stream, {k} (kB/s)", f"{lk.get(k, 0):.0f}")
    results.print(t)
    for check, ok in res.checks.items():
        console.print(f"{'[green]ok[/]' if ok else '[red]FAILED[/]'}  {check}")
    verdict = "[green]met[/]" if res.target_met else "[yellow]not met[/]"
    console.print(f"target: mitigation within {TARGET_S:.0f} s of the attack's start: {verdict}")


def _vpn(json_out: bool, keep: bool, runs: int, seconds: int, mtu: int,
         suites: tuple[str, ...], roam: bool, flavours: tuple[str, ...] | None) -> None:
    from netfate.scenarios import vpn

    opts = vpn.Options(suites=suites, runs=runs, seconds=seconds, mtu=mtu, roam=roam,
                       flavours=flavours)
    _run("vpn", json_out, lambda say: vpn.run(opts, say, keep=keep), _vpn_report)


def _fmt(v: object, unit: str = "") -> str:
    return "-" if v is None else f"{v}{unit}"


def _vpn_report(res: object) -> None:
    from netfate.scenarios.vpn import PAPER, Result

    assert isinstance(res, Result)
    t = Table(title="vpn: NNF Table IV on this machine (CPE end of the tunnel)")
    for col in ("flavour", "suite", "start", "RAM MB", "image MB", "Mbit/s uncapped",
                "CPU % uncapped", "Mbit/s at 1 Gbit/s", "CPU % at 1 Gbit/s"):
        t.add_column(col, justify="left" if col in ("flavour", "suite") else "right")
    for r in res.figures.get("table", []):
        un, ca = r.get("uncapped", {}), r.get("capped", {})
        t.add_row(r["flavour"], r["suite"], _fmt(r.get("start_s"), " s"),
                  _fmt(r.get("ram_mb")), _fmt(r.get("image_mb")),
                  _fmt(un.get("mean_mbit_s")), _fmt(un.get("cpu_pct")),
                  _fmt(ca.get("mean_mbit_s")), _fmt(ca.get("cpu_pct")))
    for fl, p in PAPER.items():
        t.add_row(f"paper: {fl}", "aes128-sha1", _fmt(p.get("start_s"), " s"),
                  _fmt(p.get("ram_mb")), _fmt(p.get("image_mb")), "", "",
                  _fmt(p.get("mbit_s")), _fmt(p.get("cpu_pct")))
    results.print(t)
    for fl, why in (res.figures.get("not_measured") or {}).items():
        console.print(f"{fl}: not measured: {why}")
    ro = res.figures.get("roaming")
    if ro:
        console.print(f"roaming ({ro.get('flavour')}): first packet through the tunnel "
                      f"{ro.get('move_to_first_ping_s')} s after the move; TCP connection "
                      f"survived: {ro.get('tcp_survived')}, longest gap {ro.get('tcp_gap_s')} s")
    for check, ok in res.checks.items():
        console.print(f"{'[green]ok[/]' if ok else '[red]FAILED[/]'}  {check}")
