"""The troubleshooter's pure parts: request validation, the tools' argument lists (never a
shell, always under timeout(1)), pcap counting, output bounds, summaries and its state
format. Nothing is run."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from tests.unit.catalogue_nf import load

ts = load("troubleshooter", "ts")
tslib = load("troubleshooter", "tslib")  # the pure parts ts.py imports


def test_request_defaults() -> None:
    r = tslib.normalise_request({"id": "p1", "tool": "ping", "target": "192.0.2.1"})
    assert r == {"id": "p1", "tool": "ping", "target": "192.0.2.1", "count": 3, "seconds": 5,
                 "packets": 100, "filter": "", "interface": "br0"}


@pytest.mark.parametrize(("req", "message"), [
    ("x", "request: must be an object"),
    ({"id": "p 1", "tool": "ping", "target": "192.0.2.1"}, "request.id"),
    ({"id": "p1", "tool": "nmap"}, "request.tool"),
    ({"id": "p1", "tool": "ping"}, "request.target: required for ping"),
    ({"id": "p1", "tool": "ping", "target": "example.org"}, "request.target"),
    ({"id": "p1", "tool": "ping", "target": "192.0.2.1", "count": 101},
     "request.count: must be an integer 1-100"),
    ({"id": "c1", "tool": "capture", "filter": "-w /etc/passwd"}, "request.filter"),
    ({"id": "c1", "tool": "capture", "filter": "tcp and -r x"}, "request.filter"),
    ({"id": "c1", "tool": "capture", "filter": "tcp; rm"}, "request.filter"),
    ({"id": "c1", "tool": "capture", "interface": "eth0"}, "request.interface"),
    ({"id": "c1", "tool": "capture", "shell": "sh"}, "request: unknown keys ['shell']"),
])
def test_bad_requests_die(req: Any, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        tslib.normalise_request(req)
    assert message in capsys.readouterr().err


def test_config_address_and_gateway(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tslib.normalise({"address": "192.0.2.10/24", "gateway": "192.0.2.1"})
    assert cfg == {"max_results": 50, "address": "192.0.2.10/24", "gateway": "192.0.2.1",
                   "beside": False}
    for bad, msg in (({"address": "192.0.2.10"}, "address: must be an IPv4 address with"),
                     ({"gateway": "192.0.2.1"}, "gateway: needs an address"),
                     ({"address": "192.0.2.10/24", "gateway": "198.51.100.1"},
                      "gateway: must be inside the address's subnet"),
                     ({"max_results": 0}, "config.max_results: must be an integer 1-1000")):
        with pytest.raises(SystemExit):
            tslib.normalise(bad)
        assert msg in capsys.readouterr().err


def test_config_mac_and_beside(capsys: pytest.CaptureFixture[str]) -> None:
    """An orchestrator's probe: br0's MAC chosen for it, beside the user's path."""
    cfg = tslib.normalise({"mac": "02:AB:00:00:00:01", "beside": True})
    assert cfg["mac"] == "02:ab:00:00:00:01" and cfg["beside"] is True
    for bad, msg in (({"mac": "01:00:5e:00:00:01"}, "group (multicast) address"),
                     ({"mac": "ff:ff:ff:ff:ff:ff"}, "group (multicast) address"),
                     ({"mac": "00:00:00:00:00:00"}, "no station's address"),
                     ({"mac": "02:00:00:00:00"}, "mac: must be a MAC address"),
                     ({"mac": 2}, "mac: must be a MAC address"),
                     ({"beside": "yes"}, "beside: must be true or false")):
        with pytest.raises(SystemExit):
            tslib.normalise(bad)
        assert msg in capsys.readouterr().err


def test_tool_argvs_are_bounded_lists() -> None:
    req = tslib.normalise_request({"id": "p", "tool": "ping", "target": "192.0.2.1", "count": 5})
    argv, limit = tslib.tool_argv(req, "/x.pcap")
    assert argv == ["timeout", "-k", "1", "5", "ping", "-n", "-c", "5", "-i", "0.2", "-W", "1",
                    "-w", "3", "192.0.2.1"]
    assert limit == 6
    req = tslib.normalise_request({"id": "t", "tool": "traceroute", "target": "192.0.2.1",
                                "count": 50})
    argv, limit = tslib.tool_argv(req, "/x.pcap")
    assert argv[:4] == ["timeout", "-k", "1", "60"] and argv[argv.index("-q") + 1] == "10"
    assert limit == 61
    req = tslib.normalise_request({"id": "c", "tool": "capture", "interface": "lan",
                                "seconds": 3, "packets": 10, "target": "192.0.2.1",
                                "filter": "tcp port 80"})
    argv, limit = tslib.tool_argv(req, "/r/c.pcap")
    assert argv[:5] == ["timeout", "-k", "1", "3", "tcpdump"]
    assert argv[argv.index("--"):] == ["--", "host", "192.0.2.1", "and", "(", "tcp", "port",
                                       "80", ")"]
    assert "-w" in argv and argv[argv.index("-w") + 1] == "/r/c.pcap"
    assert limit == 5
    req = tslib.normalise_request({"id": "c", "tool": "capture", "filter": "udp"})
    assert tslib.tool_argv(req, "/p")[0][-2:] == ["--", "udp"]


def test_pcap_records_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "c.pcap"
    hdr = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 2048, 1)
    rec = struct.pack("<IIII", 0, 0, 4, 4) + b"abcd"
    path.write_bytes(hdr + rec * 3 + b"\x00" * 5)
    assert tslib.pcap_count(str(path)) == 3
    assert tslib.pcap_count(str(tmp_path / "missing.pcap")) == 0


def test_output_is_truncated_at_64_kib() -> None:
    assert tslib.truncate("short") == "short"
    long = tslib.truncate("é" * 40_000)
    assert len(long.encode()) <= tslib.OUTPUT_MAX
    assert long.endswith("[output truncated at 64 KiB]\n")


def test_summaries() -> None:
    ping = {"tool": "ping", "output": "PING ...\n3 packets transmitted, 3 received, 0% loss\n"}
    assert tslib.summary(ping) == "3 packets transmitted, 3 received, 0% loss"
    trace = {"tool": "traceroute", "output": "traceroute to x\n 1  a\n 2  b\n"}
    assert tslib.summary(trace) == "2 hops"
    assert tslib.summary({"tool": "capture", "packets_captured": 4}) == "4 packets captured"


def test_results_state_leaves_capture_files_behind() -> None:
    results = [{"id": "c1", "tool": "capture", "pcap": "/s/c1.pcap", "output": "x"},
               {"id": "p1", "tool": "ping", "output": "y"}]
    out = tslib.exported_results(results)
    assert out[0]["pcap"] is None and out[0]["pcap_not_migrated"] is True
    assert out[1] == results[1] and results[0]["pcap"] == "/s/c1.pcap"  # not changed
    back = tslib.imported_results([{"id": "c1", "pcap": "/elsewhere", "output": "z" * 70_000}])
    assert back[0]["pcap"] is None and len(back[0]["output"]) < 70_000
    for bad in ({"id": "c1"}, [{"id": "../x"}], [{"tool": "ping"}]):
        with pytest.raises(SystemExit):
            tslib.imported_results(bad)
