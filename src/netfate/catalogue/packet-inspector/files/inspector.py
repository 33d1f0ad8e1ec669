"""Packet inspector: passive traffic statistics and port-scan / flood detection.

Usage: inspector.py daemon | check CONFIG | status [PID] | export OUT | import IN [PID]
Runs inside the NF's network namespace with "$NF_PYTHON" (stdlib only).

The daemon reads copies of the frames crossing the `lan` port (both directions: everything the
NF bridges passes lan) from an AF_PACKET socket. Forwarding never waits for it: when it falls
behind, the kernel drops copies from the socket's queue (counted in kernel.drops), never frames
on the bridge. Only the first 128 bytes of each frame are copied to userspace (MSG_TRUNC gives
the real length). It sleeps in poll() with a timeout, so it costs nothing when idle.

Signals: SIGHUP reloads the config; SIGUSR1 merges counters from $NF_RUN_DIR/import-counters.json
(written by import-state); SIGTERM/SIGINT write the stats a last time and exit.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from typing import TYPE_CHECKING, Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if TYPE_CHECKING:  # checked in the source tree; in the bundle it is packed next to this file
    from netfate.catalogue._shared import nfcommon as nf
else:
    import nfcommon as nf
die = nf.die

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
SNAP = 128
STATS_INTERVAL = 0.5
MAX_BATCH = 4096  # frames per wakeup before other work (stats, signals) gets a turn
MAX_SOURCES = 4096  # tracked sources (counters / detectors); bounded against spoofed floods
TOP_SOURCES = 50  # sources listed in stats.json
RECENT_ALERTS = 20
PROTOS = ("tcp", "udp", "icmp", "ipv4-other", "ipv6", "arp", "other")

DEFAULTS: dict[str, Any] = {
    "scan_ports": 20,
    "window_s": 5,
    "flood_pps": 2000,
    "cooldown_s": 30,
    "flood_count_tcp_ack": False,
    "notify": True,
}
LIMITS = {
    "scan_ports": (2, 65535),
    "window_s": (1, 3600),
    "flood_pps": (10, 10_000_000),
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


def stats_path() -> str:
    return os.path.join(nf.env("NF_STATE_DIR"), "stats.json")


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


def load_counters() -> dict[str, Any]:
    """The counters of $NF_STATE_DIR/stats.json (empty ones if it is missing or unreadable)."""
    if os.path.exists(stats_path()):  # continue counting across stop/start
        try:
            with open(stats_path()) as f:
                return counters_of(json.load(f))
        except (OSError, ValueError):
            pass
    return empty_counters()


class Inspector:
    """Counters and detectors over the frames of one port. `packet()` takes one frame;
    alerts are counted, kept in recent_alerts and, with cfg notify, queued as notifications.
    `run()` is the daemon around it (socket, signals, stats.json)."""

    def __init__(self, cfg: dict[str, Any], iface: str,
                 counters: dict[str, Any] | None = None) -> None:
        self.cfg = normalise(cfg)
        self.iface = iface
        self.c = counters if counters is not None else empty_counters()
        self.started = time.time()
        self.scan: dict[str, dict[int, float]] = {}  # src -> {dport: last seen}
        self.scan_dsts: dict[str, set[str]] = {}
        self.flood: dict[str, list[Any]] = {}  # src -> [window start, count, proto, dst]
        self.last_alert: dict[tuple[str, str], float] = {}
        self.reload = False
        self.merge = False
        self.stop = False

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
        st = self.flood.get(src)
        if st is None:
            if len(self.flood) >= MAX_SOURCES:
                self.flood = {s: v for s, v in self.flood.items() if now - v[0] < 1.0}
                if len(self.flood) >= MAX_SOURCES:
                    self.flood.clear()
            st = self.flood[src] = [now, 0, proto, dst]
        elif now - st[0] >= 1.0:
            st[0], st[1], st[2], st[3] = now, 0, proto, dst
        st[1] += 1
        if st[1] == self.cfg["flood_pps"]:
            elapsed = max(now - st[0], 1e-3)
            detail = {"packets": st[1], "seconds": round(elapsed, 3),
                      "pps": round(st[1] / elapsed),
                      "threshold_pps": self.cfg["flood_pps"], "proto": proto, "target": dst,
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

    # ---- output
    def write_stats(self, kernel_now: tuple[int, int]) -> None:
        c = self.c
        top = sorted(c["sources"].items(), key=lambda kv: kv[1]["packets"], reverse=True)
        doc = {
            "nf": "packet-inspector",
            "updated": time.time(),
            "started": self.started,
            "interface": self.iface,
            "config": self.cfg,
            "totals": c["totals"],
            "from_lan": c["from_lan"],
            "to_lan": c["to_lan"],
            "protocols": c["protocols"],
            "sources": dict(top[:TOP_SOURCES]),
            "sources_tracked": len(c["sources"]),
            "alerts": c["alerts"],
            "recent_alerts": c["recent_alerts"],
            "kernel": {"packets": c["kernel"]["packets"] + kernel_now[0],
                       "drops": c["kernel"]["drops"] + kernel_now[1]},
        }
        nf.atomic_write_json(stats_path(), doc)

    def run(self) -> None:
        signal.signal(signal.SIGHUP, lambda *_: setattr(self, "reload", True))
        signal.signal(signal.SIGUSR1, lambda *_: setattr(self, "merge", True))
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stop", True))
        signal.signal(signal.SIGINT, lambda *_: setattr(self, "stop", True))
        sock = self._open()
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        # Signals wake poll() at once through this pipe (poll is otherwise resumed after a
        # handler runs, PEP 475, and stop/reload would wait for its timeout).
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        poller.register(wake_r, select.POLLIN)
        buf = bytearray(SNAP)
        view = memoryview(buf)
        k_packets = k_drops = 0
        next_stats = 0.0
        last_wake = time.monotonic()
        print(f"inspecting {self.iface}, config {json.dumps(self.cfg)}", file=sys.stderr,
              flush=True)
        while not self.stop:
            now = time.monotonic()
            if now >= next_stats:
                st = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
                p, d = struct.unpack("II", st)  # reading resets the kernel's counters
                k_packets += p
                k_drops += d
                self.write_stats((k_packets, k_drops))
                next_stats = now + STATS_INTERVAL
            if self.reload:
                self.reload = False
                try:
                    self.cfg = normalise(nf.load_active_config())
                    next_stats = 0.0  # show the new config in stats.json at once
                    print(f"config reloaded: {json.dumps(self.cfg)}", file=sys.stderr, flush=True)
                except SystemExit:
                    print("config reload failed, keeping the old config", file=sys.stderr,
                          flush=True)
            if self.merge:
                self.merge = False
                self._merge_import()
                next_stats = 0.0
                continue
            timeout_ms = max(0, int((next_stats - time.monotonic()) * 1000)) + 1
            events = poller.poll(timeout_ms)
            if any(fd == wake_r for fd, _ in events):
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
                events = [e for e in events if e[0] != wake_r]
            now = time.monotonic()
            # Woken after a long gap (the NF was frozen by pause): what queued up meanwhile is
            # counted, but not used for detection (its timing is meaningless).
            detect = now - last_wake < 2.0
            last_wake = now
            if not events:
                continue
            for i in range(MAX_BATCH):
                try:
                    n, addr = sock.recvfrom_into(buf, SNAP, socket.MSG_TRUNC)
                except BlockingIOError:
                    break
                except InterruptedError:
                    continue
                except OSError as e:
                    # ENETDOWN is reported once when the port goes down; the socket works again
                    # when it comes back. If the port vanished, rebind once it is back.
                    print(f"packet socket: {e}", file=sys.stderr, flush=True)
                    if e.errno != errno.ENETDOWN:
                        sock = self._rebind(sock, poller)
                    break
                self.packet(view, min(n, SNAP), n, addr[2] == PACKET_OUTGOING, now, detect)
                if i & 255 == 255:
                    now = time.monotonic()
        self.write_stats((k_packets, k_drops))
        sock.close()

    def _open(self) -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            sock.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)  # SO_RCVBUFFORCE (root)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((self.iface, 0))
        sock.setblocking(False)
        return sock

    def _rebind(self, old: socket.socket, poller: select.poll) -> socket.socket:
        poller.unregister(old.fileno())
        old.close()
        while not self.stop:
            try:
                sock = self._open()
                poller.register(sock.fileno(), select.POLLIN)
                print(f"packet socket re-bound to {self.iface}", file=sys.stderr, flush=True)
                return sock
            except OSError:
                time.sleep(1.0)
        sys.exit(0)

    def _merge_import(self) -> None:
        path = os.path.join(nf.env("NF_RUN_DIR"), "import-counters.json")
        try:
            with open(path) as f:
                add = json.load(f)
            merge_counters(self.c, add if isinstance(add, dict) else {})
            print("imported counters merged", file=sys.stderr, flush=True)
        except (OSError, ValueError) as e:
            print(f"counter import failed: {e}", file=sys.stderr, flush=True)
        finally:
            nf.unlink_quiet(path)


def cmd_daemon() -> None:
    Inspector(nf.load_active_config(), nf.env("NF_PORTS", "lan wan").split()[0],
              load_counters()).run()


def cmd_check(path: str) -> None:
    normalise(nf.load_config_file(path))


def cmd_status(pid: str = "") -> None:
    doc: dict[str, Any] = {}
    if os.path.exists(stats_path()):
        try:
            with open(stats_path()) as f:
                doc = json.load(f)
        except (OSError, ValueError):
            doc = {}
    links = nf.read_links()
    running = bool(pid)
    doc.update({
        "nf": "packet-inspector",
        "daemon_running": running,
        "daemon_pid": int(pid) if pid.isdigit() else None,
        "running": running and nf.forwarding(links),
        "paused": nf.paused(),
        "ports": nf.port_stats(links=links),
    })
    nf.print_json(doc)


def exported_counters(stats: dict[str, Any]) -> dict[str, Any]:
    """The counters a state document carries: those of a stats document, with the top 1024
    sources only."""
    counters = counters_of(stats)
    counters["sources"] = dict(sorted(counters["sources"].items(),
                                      key=lambda kv: kv[1]["packets"], reverse=True)[:1024])
    return counters


def cmd_export(out: str) -> None:
    cfg = nf.load_active_config()
    stats = nf.load_json(stats_path()) if os.path.exists(stats_path()) else {}
    nf.write_state_doc(out, "packet-inspector", cfg, counters=exported_counters(stats))


def cmd_import(path: str, pid: str = "") -> None:
    """Apply the document's config; add its counters to ours (the daemon merges them live
    when it runs, else they are folded into stats.json for the next start)."""
    doc = nf.read_state_doc(path, "packet-inspector")
    cfg = doc["config"]
    normalise(cfg)
    nf.save_active_config(cfg)
    counters = doc.get("counters") or {}
    if not isinstance(counters, dict):
        die("state document: counters must be an object")
    if pid.isdigit():
        imp = os.path.join(nf.env("NF_RUN_DIR"), "import-counters.json")
        nf.atomic_write_json(imp, counters)
        os.kill(int(pid), signal.SIGHUP)
        os.kill(int(pid), signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while os.path.exists(imp) and time.monotonic() < deadline:
            time.sleep(0.05)
        if os.path.exists(imp):
            die("the inspector daemon did not take the imported counters")
    else:
        base = empty_counters()
        if os.path.exists(stats_path()):
            base = counters_of(nf.load_json(stats_path()))
        stats = merge_counters(base, counters)
        stats["config"] = cfg
        nf.atomic_write_json(stats_path(), stats)


if __name__ == "__main__":
    nf.main(sys.argv[1:], globals(), __doc__)
