"""`netfate scenario ddos`, CI-sized, on the whole platform: two devices flood, their
inspectors notice, the orchestrator's closed loop (reaction policy block-flood-sources) puts a
DROP rule in each one's firewall through an UPDATE operation, the flood stops at the victim
and a legitimate device's stream goes on. Outcome only (timings are reported, not
asserted)."""

from __future__ import annotations

from netfate.scenarios import ddos
from netfate.testbed import lifecycle


def test_ddos_is_mitigated_at_the_edge_without_hurting_the_legitimate_device(
        scenario_testbed: None) -> None:
    opts = ddos.Options(rate=2400, attackers=2, flood_pps=800, baseline_s=1.5, attack_s=4.0,
                        after_s=1.5, legit_kbyte_s=500)
    lines: list[str] = []
    res = ddos.run(opts, lambda t, msg: lines.append(msg))
    assert res.ok, (res.checks, res.figures, lines)
    f = res.figures
    assert set(f["rules_installed_s"]) == {"iot1", "iot2"}
    assert set(f["notification_at_orchestrator_s"]) == {"iot1", "iot2"}
    assert f["attack_pps_at_victim"]["before"] > 100
    assert f["options"]["path"] == "orchestrator closed loop"
    assert any(m.startswith("rules installed: iot1's firewall updated by the closed loop")
               for m in lines)
    assert lifecycle.status()["up"] is False  # not kept
