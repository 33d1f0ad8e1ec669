"""Each NF's notifications are rate-limited at its node's agent: a flood passes its first
burst, the rest is dropped and counted, and the count goes on once a second as one
`notifications-dropped` notification; other NFs are not held back."""

from __future__ import annotations

from typing import Any

from netfate.agent.note_limits import DROPPED, NoteLimiter


def _notes(nf_id: str, n: int) -> list[dict[str, Any]]:
    return [{"nf_id": nf_id, "nf": "packet-inspector", "owner": "u1", "type": "scan",
             "seq": i} for i in range(n)]


def test_a_flood_passes_its_burst_then_is_counted_once_a_second() -> None:
    lim = NoteLimiter(rate_per_s=20, burst=100)
    out = lim.admit(_notes("cpe1-u1-pi", 1000), now=10.0, wall=1e9)
    passed = [n for n in out if n["type"] == "scan"]
    assert [n["seq"] for n in passed] == list(range(100))  # the first burst, in order
    [summary] = [n for n in out if n["type"] == DROPPED]
    assert summary["nf_id"] == "cpe1-u1-pi" and summary["owner"] == "u1"
    assert summary["detail"] == {"dropped": 900, "rate_per_s": 20, "burst": 100}
    assert summary["source"] == "agent" and summary["ts"] == 1e9
    # half a second later: 10 tokens back; the summary waits for its second
    out = lim.admit(_notes("cpe1-u1-pi", 50), now=10.5, wall=1e9 + 0.5)
    assert len(out) == 10 and all(n["type"] == "scan" for n in out)
    out = lim.admit([], now=11.0, wall=1e9 + 1)
    assert [(n["type"], n["detail"]["dropped"]) for n in out] == [(DROPPED, 40)]
    assert lim.admit([], now=12.0, wall=1e9 + 2) == []  # nothing dropped since: no summary


def test_one_nfs_flood_does_not_hold_back_another() -> None:
    lim = NoteLimiter(rate_per_s=20, burst=100)
    out = lim.admit(_notes("a", 500) + _notes("b", 3), now=0.0, wall=0.0)
    assert sum(1 for n in out if n["nf_id"] == "b" and n["type"] == "scan") == 3


def test_a_steady_sender_within_its_rate_loses_nothing_and_idle_nfs_are_forgotten() -> None:
    lim = NoteLimiter(rate_per_s=20, burst=100)
    sent = 0
    for k in range(200):  # 20 per second for 10 s, 2 per poll of 100 ms
        sent += len(lim.admit(_notes("a", 2), now=k * 0.1, wall=0.0))
    assert sent == 400
    lim.admit([], now=100.0, wall=0.0)
    assert lim._buckets == {}
