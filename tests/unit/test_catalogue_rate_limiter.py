"""The rate limiter's pure parts: rates and sizes from its config, the tc batch it starts
with, and the status read from tc's JSON. No root, no tc."""

from __future__ import annotations

import pytest

from tests.unit.catalogue_nf import load

rl = load("rate-limiter", "rl")


def test_defaults_mean_unlimited() -> None:
    assert rl.normalise({}) == {"up_kbit": 0, "down_kbit": 0, "burst_kbyte": 0,
                                "latency_ms": 50}
    assert rl.batch_lines({}, ("lan", "wan")) == []


@pytest.mark.parametrize(("cfg", "message"), [
    ({"up": 1}, "unknown config keys: ['up']"),
    ({"up_kbit": -1}, "up_kbit: must be an integer 0-100000000"),
    ({"down_kbit": 100_000_001}, "down_kbit: must be an integer 0-100000000"),
    ({"down_kbit": "10"}, "down_kbit: must be an integer"),
    ({"up_kbit": True}, "up_kbit: must be an integer"),
    ({"burst_kbyte": 65537}, "burst_kbyte: must be an integer 0-65536"),
    ({"latency_ms": 0}, "latency_ms: must be an integer 1-1000"),
])
def test_invalid_rates_die(cfg: dict[str, object], message: str,
                           capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        rl.normalise(cfg)
    assert message in capsys.readouterr().err


def test_burst_is_ten_ms_at_the_rate_and_at_least_16_kib() -> None:
    assert rl.burst_bytes(100_000, 0) == 125_000  # 100 Mbit/s: 10 ms = 125 kB
    assert rl.burst_bytes(1_000, 0) == 16 * 1024
    assert rl.burst_bytes(100_000, 64) == 64 * 1024  # configured


def test_upstream_leaves_wan_and_downstream_leaves_lan() -> None:
    cfg = rl.normalise({"up_kbit": 2000, "down_kbit": 8000})
    assert rl.plan(cfg, ("l0", "w0")) == [("w0", "up", 2000), ("l0", "down", 8000)]


def test_batch_installs_one_tbf_per_limited_direction() -> None:
    lines = rl.batch_lines({"up_kbit": 2000, "latency_ms": 20}, ("lan", "wan"))
    assert lines == ["qdisc replace dev wan root tbf rate 2000kbit burst 16384 latency 20ms"]
    both = rl.batch_lines({"up_kbit": 200_000, "down_kbit": 1000, "burst_kbyte": 32},
                          ("lan", "wan"))
    assert both == [
        "qdisc replace dev wan root tbf rate 200000kbit burst 32768 latency 50ms",
        "qdisc replace dev lan root tbf rate 1000kbit burst 32768 latency 50ms",
    ]


def test_shaper_status_from_tc_json() -> None:
    q = {"kind": "tbf", "root": True, "options": {"rate": 250_000, "burst": 16384},
         "bytes": 1500, "packets": 1, "drops": 2, "overlimits": 3, "backlog": 0, "qlen": 0}
    st = rl.shaper_status("up", 2000, q)
    assert st["rate_kbit"] == 2000 and st["burst_bytes"] == 16384
    assert (st["sent_bytes"], st["drops"], st["overlimits"]) == (1500, 2, 3)
    none = rl.shaper_status("down", 0, {"kind": "noqueue"})
    assert none["qdisc"] == "noqueue" and none["rate_kbit"] is None and none["sent_bytes"] == 0
