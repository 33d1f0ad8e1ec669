"""`netfate scenario ddos`, CI-sized: one device floods, its inspector notices, the closed
loop's reaction policy puts a DROP rule in its firewall, the flood stops at the victim and a
legitimate device's stream goes on. Outcome only (timings are reported, not asserted)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from netfate.scenarios import ddos
from netfate.testbed import lifecycle
from netfate.testbed.topology import load_topology


@pytest.fixture(scope="module")
def scenario_testbed(testbed_up: None) -> Iterator[None]:
    """The scenario brings its own topology up and down; the default one comes back after."""
    try:
        yield
    finally:
        lifecycle.down()
        lifecycle.up(load_topology(), services=False)


def test_ddos_is_mitigated_at_the_edge_without_hurting_the_legitimate_device(
        scenario_testbed: None) -> None:
    opts = ddos.Options(rate=2400, attackers=1, flood_pps=800, baseline_s=1.5, attack_s=4.0,
                        after_s=1.5, legit_kbyte_s=500)
    lines: list[str] = []
    res = ddos.run(opts, lambda t, msg: lines.append(msg))
    assert res.ok, (res.checks, res.figures, lines)
    f = res.figures
    assert set(f["rules_installed_s"]) == {"iot1"}
    assert f["attack_pps_at_victim"]["before"] > 100
    assert any(m.startswith("rules installed: DROP 10.90.1.11") for m in lines)
    assert lifecycle.status()["up"] is False  # not kept
