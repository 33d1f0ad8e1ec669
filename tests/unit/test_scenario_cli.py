"""`netfate scenario`: names and options are checked before anything is brought up."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

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
