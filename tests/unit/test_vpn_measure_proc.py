"""The VPN scenario's CPU and memory readings from /proc (scenarios/vpn_measure.py), on this
process: no root, no namespace."""

from __future__ import annotations

import os

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
