"""`netfate bench control-plane` at a tiny size: orchestrator, embedded NATS and simulated
agents really run (no root), the JSON has its shape, and nothing is left behind."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

from netfate.bench.control_plane import TARGETS, BenchError, Params, procs, run
from netfate.bench.sim_agents import node_names


def test_node_mix() -> None:
    roles = [r for _, r in node_names(1000)]
    assert roles.count("dc") == 20 and roles.count("pe") == 83 and roles.count("cpe") == 897
    assert [r for _, r in node_names(2)] == ["dc", "cpe"]
    with pytest.raises(ValueError):
        node_names(1)


@pytest.mark.slow
def test_tiny_run_reports_and_cleans_up() -> None:
    out = run(Params(nodes=5, users=20, rate=20, duration=2, telemetry_interval=0.5,
                     users_via="api", op_timeout=20))
    assert out["benchmark"] == "control-plane"
    assert out["params"]["nodes"] == 5 and out["params"]["users"] == 20
    assert out["targets"] == TARGETS and out["peers"]["nfs_ceiling"] == 100
    overall = out["overall"]
    assert overall["errors"] == 0, overall["errors_by_kind"]
    assert overall["events_sent"] >= 20 and overall["events_handled"] == overall["events_sent"]
    assert overall["events_cut_short"] == 0
    # Every user's firewall is wanted where their last event put it (none once idle).
    assert out["served_at_end"]["users"] == 20 and out["served_at_end"]["not_served"] == 0, \
        out["served_at_end"]
    lat = overall["placement_ms"]
    assert lat["n"] >= 20 and 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert overall["handled_events_per_s"] > 0
    assert set(out["phases"]) == {"login", "roam"}
    assert out["phases"]["login"]["by_operation_ms"]["place"]["n"] == 20
    assert "SSE" in out["latency_observed_via"]
    assert out["cpu_percent"]["all"]["orchestrator"] is not None
    assert out["rss_max_mb"]["orchestrator"] > 0
    assert out["agents"] and out["agents"][0]["registered"] == 5
    assert out["agents"][0]["commands"].get("apply", 0) >= 20
    assert isinstance(out["target_met"]["p99"], bool)
    procs = out["processes"]
    assert procs["orchestrator"] and procs["nats_server"] and procs["left_running"] == []
    for pid in [procs["orchestrator"], procs["nats_server"], *procs["agents"]]:
        assert not os.path.exists(f"/proc/{pid}") or _zombie(pid)
    tmp = procs["tmp_dir"]
    assert os.path.basename(tmp).startswith("fate-") and tmp.startswith(tempfile.gettempdir())
    assert procs["tmp_dir_removed"] and not os.path.exists(tmp), "the bench left its temp dir"


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


FAKE_ORCHESTRATOR = """
import sys, time
from pathlib import Path
from netfate.bus.server import EmbeddedNats
state, nats_port, seen, then = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
nats = EmbeddedNats(state / "nats", nats_port)
nats.start()
seen.write_text(str(nats.proc.pid))
print("nats up; the API never comes", flush=True)
if then == "exit":
    sys.exit(1)  # dies without stopping its nats-server
time.sleep(60)
"""


@pytest.mark.parametrize("then", ["exit", "hang"])
def test_an_orchestrator_that_does_not_come_up_leaves_nothing_running(
        then: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its nats-server was left running after the bench exited; now it is ended with it."""
    seen = tmp_path / "nats.pid"

    def fake_argv(state: Path, _api: int, nats_port: int, _profile: str | None,
                  _nats_url: str | None = None) -> list[str]:
        return [sys.executable, "-c", FAKE_ORCHESTRATOR, str(state), str(nats_port), str(seen),
                then]

    monkeypatch.setattr(procs, "orchestrator_argv", fake_argv)
    monkeypatch.setattr(procs, "HEALTH_TIMEOUT", 5.0)
    monkeypatch.setattr(procs, "ORCHESTRATOR_GRACE", 2.0)
    with pytest.raises(BenchError, match=r"the orchestrator (exited with 1|not ready)"):
        run(Params(nodes=2, users=1, duration=0))
    nats_pid = int(seen.read_text())
    assert not os.path.exists(f"/proc/{nats_pid}") or _zombie(nats_pid), \
        "the bench left its nats-server running"


@pytest.mark.slow
def test_a_nats_member_killed_under_load_loses_no_event() -> None:
    """Issue #15: kill -9 the NATS member the orchestrator uses mid-run; the orchestrator and
    the simulated agents carry on through the other members and every event is handled."""
    out = run(Params(nodes=5, users=20, rate=20, duration=4, telemetry_interval=0.5,
                     users_via="api", op_timeout=20, nats=3, kill_nats_at=1,
                     agents_per_conn=1))
    fault = out["nats_fault"]
    assert fault["pid"] and fault["orchestrator_reconnected_s"] is not None
    assert fault["agents_reconnected_s"] is not None
    assert fault["member_killed"] not in fault["agent_connections_after"]
    overall = out["overall"]
    assert overall["errors"] == 0, overall["errors_by_kind"]
    assert overall["events_handled"] == overall["events_sent"] >= 20
    assert out["served_at_end"]["not_served"] == 0, out["served_at_end"]
    procs = out["processes"]
    assert len(procs["nats_cluster"]) == 3 and procs["left_running"] == []
    assert procs["tmp_dir_removed"]


def test_cluster_options_are_checked() -> None:
    from netfate.bench.control_plane.params import BenchError
    for bad in (Params(nats=0), Params(nats=10), Params(nats=1, kill_nats_at=1),
                Params(nats=3, kill_nats_at=-1), Params(nats=3, duration=5, kill_nats_at=6)):
        with pytest.raises(BenchError):
            bad.check()


@pytest.mark.parametrize("bad", [
    {"rate": float("nan")}, {"rate": float("inf")}, {"duration": float("nan")},
    {"duration": float("inf")}, {"kill_nats_at": float("nan"), "nats": 2},
    {"telemetry_interval": float("nan")}, {"telemetry_interval": 0.0},
    {"idle_fraction": float("nan")}, {"idle_fraction": 1.5}, {"idle_fraction": -0.1},
    {"op_timeout": float("nan")}, {"op_timeout": 0.0}, {"apply_delay_ms": float("nan")},
    {"apply_delay_ms": -1.0}, {"idle_window": float("inf")},
])
def test_nan_inf_and_out_of_range_figures_are_refused(bad: dict[str, float]) -> None:
    """A NaN passes every comparison-based check (NaN <= 0 is false): --rate nan,
    --duration inf or --kill-nats-at nan were accepted, and the run then slept or looped on
    them. Every figure must be finite and within its range."""
    with pytest.raises(BenchError):
        Params(**{"nodes": 2, "users": 1, "duration": 5.0, **bad}).check()  # type: ignore[arg-type]
