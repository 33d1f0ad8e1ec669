"""`netfate bench chain`, CI-sized (issue 11): the paths with the firewall on the CPE, the PE
and in the DC against the plain path, then one DC failure with the time to re-serve its
users, in one run. Behaviour only: every path measured, the failed DC's users served again
through the other DC. Minutes, not more: 1 s of iperf3 and 5 pings per path."""

from __future__ import annotations

from netfate.bench import chain
from netfate.testbed import lifecycle
from netfate.testbed.topology import load_topology


def test_bench_chain_measures_every_path_and_the_time_to_re_serve_after_a_dc_fails(
        ) -> None:
    try:
        out = chain.run(seconds=1, pings=5, failover_runs=1)
    finally:
        lifecycle.down()
        lifecycle.up(load_topology(), services=False)
    paths = out["paths"]
    for label in ("plain", "local", "pe", "dc"):
        assert paths[label]["rtt_ms"] > 0 and paths[label]["gbps"] > 0, (label, paths)
    fo = out["failover"]
    assert fo["runs"] == 1 and fo["served_s"]["n"] == 1, fo
    (run,) = fo["runs_detail"]
    assert run["failed"] in ("dc1", "dc2") and run["to"] != run["failed"], run
    assert "bench-dc1" in run["users"], run
    assert run["served_s"] >= run["replacement_running_s"] > 0, run
    print(f"\nBENCH CHAIN {out}")
