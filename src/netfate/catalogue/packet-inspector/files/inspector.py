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

    from . import detect
else:
    import detect
    import nfcommon as nf
die = nf.die

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
SNAP = 128
STATS_INTERVAL = 0.5
MAX_BATCH = 4096  # frames per wakeup before other work (stats, signals) gets a turn
TOP_SOURCES = 50  # sources listed in stats.json


def stats_path() -> str:
    return os.path.join(nf.env("NF_STATE_DIR"), "stats.json")


def load_counters() -> dict[str, Any]:
    """The counters of $NF_STATE_DIR/stats.json (empty ones if it is missing or unreadable)."""
    if os.path.exists(stats_path()):  # continue counting across stop/start
        try:
            with open(stats_path()) as f:
                return detect.counters_of(json.load(f))
        except (OSError, ValueError):
            pass
    return detect.empty_counters()


class Inspector(detect.Detector):
    """The daemon around a `detect.Detector` on one port: its packet socket, signals and
    stats.json (`run()`)."""

    def __init__(self, cfg: dict[str, Any], iface: str,
                 counters: dict[str, Any] | None = None) -> None:
        super().__init__(cfg, counters)
        self.iface = iface
        self.started = time.time()
        self.reload = False
        self.merge = False
        self.stop = False

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
                    self.cfg = detect.normalise(nf.load_active_config())
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
            detecting = now - last_wake < 2.0
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
                self.packet(view, min(n, SNAP), n, addr[2] == PACKET_OUTGOING, now, detecting)
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
            detect.merge_counters(self.c, add if isinstance(add, dict) else {})
            print("imported counters merged", file=sys.stderr, flush=True)
        except (OSError, ValueError) as e:
            print(f"counter import failed: {e}", file=sys.stderr, flush=True)
        finally:
            nf.unlink_quiet(path)


def cmd_daemon() -> None:
    Inspector(nf.load_active_config(), nf.env("NF_PORTS", "lan wan").split()[0],
              load_counters()).run()


def cmd_check(path: str) -> None:
    detect.normalise(nf.load_config_file(path))


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


def cmd_export(out: str) -> None:
    cfg = nf.load_active_config()
    stats = nf.load_json(stats_path()) if os.path.exists(stats_path()) else {}
    nf.write_state_doc(out, "packet-inspector", cfg, counters=detect.exported_counters(stats))


def cmd_import(path: str, pid: str = "") -> None:
    """Apply the document's config; add its counters to ours (the daemon merges them live
    when it runs, else they are folded into stats.json for the next start)."""
    doc = nf.read_state_doc(path, "packet-inspector")
    cfg = doc["config"]
    detect.normalise(cfg)
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
        base = detect.empty_counters()
        if os.path.exists(stats_path()):
            base = detect.counters_of(nf.load_json(stats_path()))
        stats = detect.merge_counters(base, counters)
        stats["config"] = cfg
        nf.atomic_write_json(stats_path(), stats)


if __name__ == "__main__":
    nf.main(sys.argv[1:], globals(), __doc__)
