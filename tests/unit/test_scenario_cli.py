"""`netfate scenario`: names and options are checked before anything is brought up."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from dataclasses import dataclass, field

import pytest
import typer
from typer.testing import CliRunner

from netfate.cli import scenario as cli_scenario
from netfate.cli.main import app
from netfate.errors import InvalidInput
from netfate.scenarios import ddos


def test_unknown_scenario_is_refused_naming_the_known_ones() -> None:
    r = CliRunner().invoke(app, ["scenario", "nope"])
    assert r.exit_code == 2 and "no scenario 'nope'; there are: ddos" in r.output


def test_bad_rate_is_refused_by_the_parser() -> None:
    r = CliRunner().invoke(app, ["scenario", "ddos", "--rate", "5"])
    assert r.exit_code == 2 and "5 is not in 100-100000" in r.output


@pytest.mark.parametrize(("opts", "message"), [
    (ddos.Options(attackers=4), "attackers: 1-3"),
    (ddos.Options(rate=500, flood_pps=1000), "below the inspector's threshold"),
])
def test_options_the_topology_cannot_serve_fail_before_the_testbed(
        opts: ddos.Options, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        ddos.run(opts, lambda t, m: None)


def test_the_scenario_topology_has_four_devices_on_one_cpe() -> None:
    topo = ddos.topology()
    devices = [h for h in topo.hosts if h.role == "client"]
    assert len(devices) == 4 and {h.attach for h in devices} == {"cpe1"}


@dataclass
class _Res:
    ok: bool
    timeline: list[tuple[float, str]] = field(default_factory=list)


def test_a_scenario_prints_its_timeline_then_its_report_and_exits_1_if_not_ok(
        capsys: pytest.CaptureFixture[str]) -> None:
    reported: list[object] = []

    def run(say: cli_scenario.Say) -> _Res:
        say(1.5, "step one")
        return _Res(ok=False)

    with pytest.raises(typer.Exit) as e:
        cli_scenario._run("x", False, run, reported.append)
    assert e.value.exit_code == 1 and reported == [_Res(ok=False)]
    assert "t+  1.50s step one" in capsys.readouterr().err


def test_a_scenario_with_json_prints_the_result_alone() -> None:
    def run(say: cli_scenario.Say) -> _Res:
        say(0.25, "step one")
        return _Res(ok=True, timeline=[(0.25, "step one")])

    def report(res: object) -> None:
        raise AssertionError("no report with --json")

    out = io.StringIO()
    with redirect_stdout(out):
        cli_scenario._run("x", True, run, report)
    assert json.loads(out.getvalue()) == {"ok": True, "timeline": [[0.25, "step one"]]}
