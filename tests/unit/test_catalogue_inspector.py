"""The packet inspector's pure parts: frame parsing, port-scan and flood detection with
their cooldown, and its counters' state format. Frames are built here; no socket, no root."""

from __future__ import annotations

import socket
import struct
from typing import Any

import pytest

from tests.unit.catalogue_nf import load

pi = load("packet-inspector", "inspector")
detect = load("packet-inspector", "detect")  # the pure parts inspector.py imports

LAN_MAC, WAN_MAC = b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02"


def frame(src: str, dst: str, proto: int, sport: int = 1234, dport: int = 80,
          flags: int = 0x02) -> memoryview:
    """An Ethernet/IPv4 frame with a TCP (flags) or UDP header, first 128 bytes."""
    if proto == 6:
        l4 = struct.pack("!HHIIBBHHH", sport, dport, 0, 0, 5 << 4, flags, 1024, 0, 0)
    elif proto == 17:
        l4 = struct.pack("!HHHH", sport, dport, 8, 0)
    else:
        l4 = b"\x08\x00\x00\x00\x00\x00\x00\x00"
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return memoryview(LAN_MAC + WAN_MAC + b"\x08\x00" + ip + l4)


def inspector(**cfg: Any) -> Any:
    return pi.Inspector({"notify": False, **cfg}, "lan")


def feed(insp: Any, buf: memoryview, now: float, outgoing: bool = False) -> None:
    insp.packet(buf, len(buf), len(buf) + 1000, outgoing, now)


def test_counts_by_direction_protocol_and_source() -> None:
    insp = inspector()
    feed(insp, frame("10.0.0.2", "192.0.2.1", 6, flags=0x10), 0.0)
    feed(insp, frame("192.0.2.1", "10.0.0.2", 17), 0.1, outgoing=True)
    arp = memoryview(LAN_MAC + WAN_MAC + b"\x08\x06" + bytes(28))
    insp.packet(arp, len(arp), 60, False, 0.2)
    c = insp.c
    assert c["totals"]["packets"] == 3
    assert c["from_lan"]["packets"] == 2 and c["to_lan"]["packets"] == 1
    assert c["protocols"]["tcp"]["packets"] == 1 and c["protocols"]["udp"]["packets"] == 1
    assert c["protocols"]["arp"] == {"packets": 1, "bytes": 60}
    assert c["sources"]["10.0.0.2"]["bytes"] == len(frame("10.0.0.2", "192.0.2.1", 6)) + 1000
    assert "arp" not in c["sources"]


def test_port_scan_raises_one_alert_then_cools_down() -> None:
    insp = inspector(scan_ports=20, window_s=5, cooldown_s=30)
    for port in range(1, 20):
        feed(insp, frame("10.0.0.66", "192.0.2.1", 6, dport=port), port * 0.01)
    assert insp.c["alerts"]["port-scan"] == 0
    feed(insp, frame("10.0.0.66", "192.0.2.1", 6, dport=20), 0.5)
    assert insp.c["alerts"]["port-scan"] == 1
    alert = insp.c["recent_alerts"][-1]
    assert alert["type"] == "port-scan" and alert["source"] == "10.0.0.66"
    assert alert["detail"]["ports"] == 20 and alert["detail"]["direction"] == "from-lan"
    assert alert["detail"]["proto"] == "tcp"
    for port in range(100, 120):  # the same scanner again, within the cooldown
        feed(insp, frame("10.0.0.66", "192.0.2.1", 6, dport=port), 1.0)
    assert insp.c["alerts"] == {"port-scan": 1, "flood": 0, "suppressed": 1}


def test_a_scan_must_fit_in_the_window() -> None:
    insp = inspector(scan_ports=5, window_s=5)
    for i in range(10):  # one new port every 2 s: never 5 within 5 s
        feed(insp, frame("10.0.0.7", "192.0.2.1", 17, dport=1000 + i), i * 2.0)
    assert insp.c["alerts"]["port-scan"] == 0


def test_established_tcp_is_neither_scan_nor_flood() -> None:
    insp = inspector(scan_ports=2, flood_pps=10)
    for i in range(50):
        feed(insp, frame("192.0.2.1", "10.0.0.2", 6, dport=40000 + i, flags=0x10), i * 0.001)
    assert insp.c["alerts"] == {"port-scan": 0, "flood": 0, "suppressed": 0}
    counting = inspector(flood_pps=10, flood_count_tcp_ack=True)
    for i in range(10):
        feed(counting, frame("192.0.2.1", "10.0.0.2", 6, flags=0x10), i * 0.001)
    assert counting.c["alerts"]["flood"] == 1


def test_flood_within_one_second() -> None:
    insp = inspector(flood_pps=100)
    for i in range(99):
        feed(insp, frame("192.0.2.9", "10.0.0.2", 1), i * 0.005)
    assert insp.c["alerts"]["flood"] == 0
    feed(insp, frame("192.0.2.9", "10.0.0.2", 1), 0.6, outgoing=True)
    assert insp.c["alerts"]["flood"] == 1
    d = insp.c["recent_alerts"][-1]["detail"]
    assert d["packets"] == 100 and d["target"] == "10.0.0.2" and d["proto"] == "icmp"
    slow = inspector(flood_pps=100)
    for i in range(300):  # 50 pps
        feed(slow, frame("192.0.2.9", "10.0.0.2", 1), i * 0.02)
    assert slow.c["alerts"]["flood"] == 0


def test_flood_over_a_shorter_window_is_reported_sooner() -> None:
    """flood_window_ms=250: the threshold rate over a quarter second (25 of 100 pps)."""
    insp = inspector(flood_pps=100, flood_window_ms=250)
    for i in range(24):  # 400 pps for 60 ms
        feed(insp, frame("192.0.2.9", "10.0.0.2", 17), i * 0.0025)
    assert insp.c["alerts"]["flood"] == 0
    feed(insp, frame("192.0.2.9", "10.0.0.2", 17), 0.062)
    assert insp.c["alerts"]["flood"] == 1
    d = insp.c["recent_alerts"][-1]["detail"]
    assert d["packets"] == 25 and d["window_ms"] == 250 and d["threshold_pps"] == 100
    slow = inspector(flood_pps=100, flood_window_ms=250)
    for i in range(200):  # 80 pps: 20 per window, below 25
        feed(slow, frame("192.0.2.9", "10.0.0.2", 17), i * 0.0125)
    assert slow.c["alerts"]["flood"] == 0
    with pytest.raises(SystemExit):
        inspector(flood_window_ms=20)


def test_frames_queued_during_a_pause_are_counted_not_detected() -> None:
    insp = inspector(flood_pps=10)
    for _ in range(20):
        buf = frame("192.0.2.9", "10.0.0.2", 1)
        insp.packet(buf, len(buf), len(buf), False, 0.0, detect=False)
    assert insp.c["totals"]["packets"] == 20 and insp.c["alerts"]["flood"] == 0


def test_notifications_are_queued_when_enabled(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Any) -> None:
    (tmp_path / "tmp").mkdir()
    (tmp_path / "new").mkdir()
    monkeypatch.setenv("NF_NOTIFY_DIR", str(tmp_path))
    monkeypatch.setenv("NF_ID", "cpe1-u1-packet-inspector")
    insp = pi.Inspector({"flood_pps": 10}, "lan")
    for i in range(10):
        feed(insp, frame("192.0.2.9", "10.0.0.2", 1), i * 0.01)
    [note] = list((tmp_path / "new").iterdir())
    assert note.name.endswith("-cpe1-u1-packet-inspector-flood.json")


def test_config_limits(capsys: pytest.CaptureFixture[str]) -> None:
    assert detect.normalise({})["scan_ports"] == 20
    for cfg, msg in (({"scan_ports": 1}, "scan_ports: must be an integer 2-65535"),
                     ({"notify": "yes"}, "notify: must be a boolean"),
                     ({"sniff": True}, "unknown config keys")):
        with pytest.raises(SystemExit):
            detect.normalise(cfg)
        assert msg in capsys.readouterr().err


def test_counters_state_merges_and_ignores_garbage() -> None:
    base = detect.empty_counters()
    add = {
        "totals": {"packets": 5, "bytes": 500},
        "protocols": {"tcp": {"packets": 5, "bytes": 500}, "bogus": {"packets": 1}},
        "sources": {"10.0.0.2": {"packets": 5, "bytes": 500}, "not-an-ip": {"packets": 1}},
        "alerts": {"flood": 2, "nope": 1, "port-scan": -1},
        "kernel": {"packets": 7, "drops": 1},
        "recent_alerts": [{"type": "flood"}, "garbage"],
        "from_lan": {"packets": True, "bytes": -3},
    }
    detect.merge_counters(base, add)
    detect.merge_counters(base, add)
    assert base["totals"] == {"packets": 10, "bytes": 1000}
    assert base["protocols"]["tcp"] == {"packets": 10, "bytes": 1000}
    assert "bogus" not in base["protocols"]
    assert list(base["sources"]) == ["10.0.0.2"]
    assert base["alerts"] == {"port-scan": 0, "flood": 4, "suppressed": 0}
    assert base["kernel"] == {"packets": 14, "drops": 2}
    assert base["recent_alerts"] == [{"type": "flood"}, {"type": "flood"}]
    assert base["from_lan"] == {"packets": 0, "bytes": 0}


def test_exported_counters_keep_the_top_1024_sources() -> None:
    stats = {"sources": {f"10.0.{i // 256}.{i % 256}": {"packets": i, "bytes": i}
                         for i in range(1100)}}
    out = detect.exported_counters(stats)
    assert len(out["sources"]) == 1024
    assert "10.0.4.75" in out["sources"] and "10.0.0.0" not in out["sources"]
    assert out["alerts"] == {"port-scan": 0, "flood": 0, "suppressed": 0}
