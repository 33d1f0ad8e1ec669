"""The VPN scenario's CPU and memory readings from /proc (scenarios/vpn_measure.py), on this
process: no root, no namespace."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from netfate.scenarios import vpn_measure as m

GONE = 2**22 + 1  # above pid_max's ceiling: never a process


def test_cpu_ticks_are_utime_plus_stime_after_a_command_with_spaces_and_parens() -> None:
    stat = "42 (a) b) (c) S 1 2 3 4 5 6 7 8 9 10 7 5 0 0 20 0 1 0 100 0 0"
    assert m._utime_stime(stat) == 12


def test_a_process_gone_adds_nothing() -> None:
    me = os.getpid()
    assert m.cpu_ticks([]) == 0 and m.rss_mb([GONE]) == 0.0
    before = m.cpu_ticks([me])
    with_gone = m.cpu_ticks([me, GONE])
    assert before <= with_gone <= m.cpu_ticks([me])  # this process's ticks only grow


def test_resident_memory_is_summed_over_the_processes_in_mb() -> None:
    me = os.getpid()
    one = m.rss_mb([me])
    assert one > 1 and abs(m.rss_mb([me, me]) - 2 * one) < 5


def test_an_iperf_run_that_does_not_end_or_fails_is_counted_not_raised(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A tunnel slower than iperf3's end of test (a VM NF under TCG on a loaded machine):
    the run is bounded, not measured, and counted; the others still are."""
    calls: list[int] = []

    def fake_run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        calls.append(1)
        if len(calls) == 1:
            raise subprocess.TimeoutExpired(argv, float(kw["timeout"]))  # type: ignore[arg-type]
        if len(calls) == 2:  # an error of iperf3's own (seen: a control connection reset)
            doc: dict[str, object] = {"end": {}, "error": "unable to receive control "
                                      "message: Connection reset by peer"}
            return subprocess.CompletedProcess(argv, 1, json.dumps(doc), "")
        doc = {"end": {"sum_received": {"bits_per_second": 8e6}}}
        return subprocess.CompletedProcess(argv, 0, json.dumps(doc), "")

    monkeypatch.setattr(m.subprocess, "run", fake_run)
    tp = m.iperf("ns", "192.0.2.1", 1360, 1, 3, None)
    assert tp.mbit_s == [8.0]
    s = tp.summary()
    assert s["runs_failed"] == 2 and s["mean_mbit_s"] == 8.0
    assert s["failures"] == ["did not end within 21 s",
                             "unable to receive control message: Connection reset by peer"]
