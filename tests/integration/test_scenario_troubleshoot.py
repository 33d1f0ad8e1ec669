"""`netfate scenario troubleshoot`, CI-sized: a first question finds nothing broken; a port
denied in the user's firewall, then the link cpe1-core down, are each found by one question
asked at the CPE, the PE and the DC; the operator's probes are gone afterwards. Outcome only
(the time to report is reported, not asserted)."""

from __future__ import annotations

from netfate.scenarios import troubleshoot
from netfate.testbed import lifecycle


def test_the_report_points_at_what_was_broken_and_the_probes_go(
        scenario_testbed: None) -> None:
    lines: list[str] = []
    res = troubleshoot.run(troubleshoot.Options(capture_s=2), lambda t, m: lines.append(m))
    failed = [name for name, ok in res.checks.items() if not ok]
    # The failed checks and each question's verdict first: pytest cuts long messages.
    verdicts = {q: (r["verdict"]["kind"], r["verdict"]["stops_at"],
                    str(r["verdict"].get("reason"))[:240]) for q, r in res.reports.items()}
    assert res.ok, (failed, verdicts, lines)
    qs = res.figures["questions"]
    assert qs["no fault"]["verdict"] == "none"
    assert qs["firewall denies the port"]["stops_at"] == "user1's firewall on cpe1"
    assert qs["link down"]["stops_at"] == "link cpe1-core"
    assert all(q["points"] == 3 for q in qs.values())
    fw = res.reports["firewall denies the port"]
    assert {p["point"] for p in fw["points"]} == {"cpe1", "core", "dc"}
    assert fw["flows"]["cpe1"] and fw["nfs"][0]["nf"] == "firewall"
    assert fw["left_behind"] == []
    assert lifecycle.status()["up"] is False  # not kept
