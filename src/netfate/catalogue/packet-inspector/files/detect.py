"""The packet inspector's pure parts: its config, its counters' format, and `Detector`, which
parses frames, counts them and detects port scans and floods.

Stdlib only, no socket: inspector.py (the daemon) imports it as a sibling file (packed next
to it in the bundle) and feeds it the frames it reads.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # checked in the source tree; in the bundle it is packed next to this file
    from netfate.catalogue._shared import nfcommon as nf
else:
    import nfcommon as nf
die = nf.die


MAX_SOURCES = 4096  # tracked sources (counters / detectors); bounded against spoofed floods
RECENT_ALERTS = 20
PROTOS = ("tcp", "udp", "icmp", "ipv4-other", "ipv6", "arp", "other")
DEFAULTS: dict[str, Any] = {
    "scan_ports": 20,
    "window_s": 5,
    "flood_pps": 2000,
    "flood_window_ms": 1000,
    "cooldown_s": 30,
    "flood_count_tcp_ack": False,
    "notify": True,
}
LIMITS = {
    "scan_ports": (2, 65535),
    "window_s": (1, 3600),
    "flood_pps": (10, 10_000_000),
    "flood_window_ms": (50, 1000),
    "cooldown_s": (0, 86400),
}


def normalise(cfg: dict[str, Any]) -> dict[str, Any]:
    """The config with DEFAULTS filled; dies on unknown keys or values out of LIMITS."""
    extra = set(cfg) - set(DEFAULTS)
    if extra:
        die(f"unknown config keys: {sorted(extra)}")
    out = dict(DEFAULTS)
    out.update(cfg)
    for k, (lo, hi) in LIMITS.items():
        nf.int_in(out, k, DEFAULTS[k], lo, hi)
    for k in ("notify", "flood_count_tcp_ack"):
        if not isinstance(out[k], bool):
            die(f"{k}: must be a boolean")
    return out


def empty_counters() -> dict[str, Any]:
    return {
        "totals": {"packets": 0, "bytes": 0},
        "from_lan": {"packets": 0, "bytes": 0},
        "to_lan": {"packets": 0, "bytes": 0},
        "protocols": {p: {"packets": 0, "bytes": 0} for p in PROTOS},
        "sources": {},
        "alerts": {"port-scan": 0, "flood": 0, "suppressed": 0},
        "recent_alerts": [],
        "kernel": {"packets": 0, "drops": 0},
    }


def merge_counters(base: dict[str, Any], add: dict[str, Any]) -> dict[str, Any]:
    """base += add, for the counters part of a stats document (unknown keys ignored)."""
    def add_pair(dst: dict[str, Any], src: Any) -> None:
        if isinstance(src, dict):
            for k in ("packets", "bytes"):
                v = src.get(k)
                if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
                    dst[k] = dst.get(k, 0) + v

    for key in ("totals", "from_lan", "to_lan"):
        add_pair(base[key], add.get(key))
    for p, c in (add.get("protocols") or {}).items():
        if p in base["protocols"]:
            add_pair(base["protocols"][p], c)
    for s, c in list((add.get("sources") or {}).items())[:MAX_SOURCES]:
        try:
            s = str(ipaddress.ip_address(s))
        except ValueError:
            continue
        add_pair(base["sources"].setdefault(s, {"packets": 0, "bytes": 0}), c)
    for k, v in (add.get("alerts") or {}).items():
        if k in base["alerts"] and isinstance(v, int) and v >= 0:
            base["alerts"][k] += v
    k_add = add.get("kernel") or {}
    for k in ("packets", "drops"):
        v = k_add.get(k)
        if isinstance(v, int) and v >= 0:
            base["kernel"][k] += v
    recent = [a for a in (add.get("recent_alerts") or []) if isinstance(a, dict)]
    base["recent_alerts"] = (recent + base["recent_alerts"])[-RECENT_ALERTS:]
    return base


def counters_of(doc: dict[str, Any]) -> dict[str, Any]:
    return merge_counters(empty_counters(), doc)


class Detector:
    """Counters and detectors over the frames of one port. `packet()` takes one frame;
    alerts are counted, kept in recent_alerts and, with cfg notify, queued as notifications."""

    def __init__(self, cfg: dict[str, Any], counters: dict[str, Any] | None = None) -> None:
        self.cfg = normalise(cfg)
        self.c = counters if counters is not None else empty_counters()
        self.scan: dict[str, dict[int, float]] = {}  # src -> {dport: last seen}
        self.scan_dsts: dict[str, set[str]] = {}
        self.flood: dict[str, list[Any]] = {}  # src -> [window start, count, proto, dst]
        self.last_alert: dict[tuple[str, str], float] = {}

    # ---- detectors
    def _alert(self, kind: str, severity: str, src: str, detail: dict[str, Any],
               now: float) -> None:
        key = (kind, src)
        last = self.last_alert.get(key)
        if last is not None and now - last < self.cfg["cooldown_s"]:
            self.c["alerts"]["suppressed"] += 1
            return
        if len(self.last_alert) >= MAX_SOURCES:
            cut = now - self.cfg["cooldown_s"]
            self.last_alert = {k: t for k, t in self.last_alert.items() if t >= cut}
        self.last_alert[key] = now
        self.c["alerts"][kind] += 1
        rec = {"type": kind, "severity": severity, "source": src, "ts": time.time(),
               "detail": detail}
        self.c["recent_alerts"] = (self.c["recent_alerts"] + [rec])[-RECENT_ALERTS:]
        if self.cfg["notify"]:
            nf.notify(kind, severity, src, detail)
        print(f"alert {kind} {src} {json.dumps(detail)}", file=sys.stderr, flush=True)

    def _scan_event(self, src: str, dst: str, dport: int, proto: str, outgoing: bool,
                    now: float) -> None:
        ports = self.scan.get(src)
        if ports is None:
            if len(self.scan) >= MAX_SOURCES:
                self._prune_scan(now)
            ports = self.scan[src] = {}
            self.scan_dsts[src] = set()
        ports[dport] = now
        dsts = self.scan_dsts[src]
        if len(dsts) < 16:
            dsts.add(dst)
        threshold = self.cfg["scan_ports"]
        if len(ports) < threshold:
            return
        cut = now - self.cfg["window_s"]
        for p in [p for p, t in ports.items() if t < cut]:
            del ports[p]
        if len(ports) >= threshold:
            detail = {
                "ports": len(ports), "threshold": threshold, "window_s": self.cfg["window_s"],
                "proto": proto, "sample_ports": sorted(ports)[:20], "targets": sorted(dsts)[:5],
                "direction": "to-lan" if outgoing else "from-lan",
            }
            del self.scan[src]
            del self.scan_dsts[src]
            self._alert("port-scan", "warning", src, detail, now)

    def _prune_scan(self, now: float) -> None:
        cut = now - self.cfg["window_s"]
        for s in [s for s, ports in self.scan.items() if max(ports.values(), default=0) < cut]:
            del self.scan[s]
            self.scan_dsts.pop(s, None)
        if len(self.scan) >= MAX_SOURCES:  # still full: a spoofed-source flood; start over
            self.scan.clear()
            self.scan_dsts.clear()

    def _flood_event(self, src: str, dst: str, proto: str, outgoing: bool, now: float) -> None:
        # A rate of flood_pps measured over flood_window_ms: a shorter window reports a flood
        # sooner (a quarter of a second at 4x the threshold rate instead of a whole one),
        # at the price of tolerating shorter bursts less.
        window = self.cfg["flood_window_ms"] / 1000.0
        need = max(1, -(-self.cfg["flood_pps"] * self.cfg["flood_window_ms"] // 1000))
        st = self.flood.get(src)
        if st is None:
            if len(self.flood) >= MAX_SOURCES:
                self.flood = {s: v for s, v in self.flood.items() if now - v[0] < window}
                if len(self.flood) >= MAX_SOURCES:
                    self.flood.clear()
            st = self.flood[src] = [now, 0, proto, dst]
        elif now - st[0] >= window:
            st[0], st[1], st[2], st[3] = now, 0, proto, dst
        st[1] += 1
        if st[1] == need:
            elapsed = max(now - st[0], 1e-3)
            detail = {"packets": st[1], "seconds": round(elapsed, 3),
                      "pps": round(st[1] / elapsed),
                      "threshold_pps": self.cfg["flood_pps"],
                      "window_ms": self.cfg["flood_window_ms"], "proto": proto, "target": dst,
                      "direction": "to-lan" if outgoing else "from-lan"}
            self._alert("flood", "critical", src, detail, now)

    # ---- parsing
    def packet(self, buf: memoryview, caplen: int, length: int, outgoing: bool, now: float,
               detect: bool = True) -> None:
        c = self.c
        c["totals"]["packets"] += 1
        c["totals"]["bytes"] += length
        d = c["to_lan"] if outgoing else c["from_lan"]
        d["packets"] += 1
        d["bytes"] += length
        proto = "other"
        src: str | None = None
        dst = ""
        l4 = None
        off = 14
        if caplen >= 14:
            etype = (buf[12] << 8) | buf[13]
            while etype in (0x8100, 0x88A8) and caplen >= off + 4:
                etype = (buf[off + 2] << 8) | buf[off + 3]
                off += 4
            if etype == 0x0800 and caplen >= off + 20:
                ihl = (buf[off] & 0x0F) * 4
                ipproto = buf[off + 9]
                src = socket.inet_ntop(socket.AF_INET, bytes(buf[off + 12:off + 16]))
                dst = socket.inet_ntop(socket.AF_INET, bytes(buf[off + 16:off + 20]))
                frag_off = ((buf[off + 6] << 8) | buf[off + 7]) & 0x1FFF
                proto = {6: "tcp", 17: "udp", 1: "icmp"}.get(ipproto, "ipv4-other")
                if frag_off == 0 and ipproto in (6, 17):
                    l4 = (ipproto, off + ihl)
            elif etype == 0x86DD and caplen >= off + 40:
                proto = "ipv6"
                nh = buf[off + 6]
                src = socket.inet_ntop(socket.AF_INET6, bytes(buf[off + 8:off + 24]))
                dst = socket.inet_ntop(socket.AF_INET6, bytes(buf[off + 24:off + 40]))
                if nh in (6, 17):
                    l4 = (nh, off + 40)
            elif etype == 0x0806:
                proto = "arp"
        p = c["protocols"][proto]
        p["packets"] += 1
        p["bytes"] += length
        if src is None:
            return
        srcs = c["sources"]
        s = srcs.get(src)
        if s is None:
            if len(srcs) >= MAX_SOURCES:
                self._trim_sources()
            s = srcs[src] = {"packets": 0, "bytes": 0}
        s["packets"] += 1
        s["bytes"] += length
        if not detect:
            return
        flags = -1
        if l4 is not None and l4[0] == 6 and caplen >= l4[1] + 14:
            flags = buf[l4[1] + 13]
        # Segments of accepted TCP connections (ACK set) are not a flood unless configured:
        # otherwise every bulk download would be one.
        if flags < 0 or not flags & 0x10 or self.cfg["flood_count_tcp_ack"]:
            self._flood_event(src, dst, proto, outgoing, now)
        if l4 is not None:
            ipproto, lo = l4
            if ipproto == 6 and flags >= 0:
                if flags & 0x02 and not flags & 0x10:  # SYN without ACK: a connection attempt
                    self._scan_event(src, dst, (buf[lo + 2] << 8) | buf[lo + 3], "tcp",
                                     outgoing, now)
            elif ipproto == 17 and caplen >= lo + 4:
                self._scan_event(src, dst, (buf[lo + 2] << 8) | buf[lo + 3], "udp",
                                 outgoing, now)

    def _trim_sources(self) -> None:
        srcs = self.c["sources"]
        keep = sorted(srcs.items(), key=lambda kv: kv[1]["packets"], reverse=True)
        self.c["sources"] = dict(keep[: MAX_SOURCES // 2])


def exported_counters(stats: dict[str, Any]) -> dict[str, Any]:
    """The counters a state document carries: those of a stats document, with the top 1024
    sources only."""
    counters = counters_of(stats)
    counters["sources"] = dict(sorted(counters["sources"].items(),
                                      key=lambda kv: kv[1]["packets"], reverse=True)[:1024])
    return counters
