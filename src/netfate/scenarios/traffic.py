"""Traffic for the scenarios: what reaches the victim per source (nft counters in its
namespace), a paced legitimate TCP stream with its throughput over time, floods.

Everything is sent only to addresses inside namespaces the testbed created, and every
process started here is ended by its own PID.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from netfate.drivers import netns
from netfate.proc import netns_argv

VICTIM_TABLE = "fate_scenario_victim"
FLOOD = Path(__file__).with_name("flood.py")
# Discards what it gets: the legitimate stream's far end.
SINK = (
    "import socket,sys,threading\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
    "s.bind((sys.argv[1],int(sys.argv[2]))); s.listen(8)\n"
    "def eat(c):\n"
    "  while c.recv(65536): pass\n"
    "while True:\n"
    "  c,_=s.accept(); threading.Thread(target=eat,args=(c,),daemon=True).start()\n"
)


def _nft(ns: str, args: list[str], stdin: str | None = None) -> str:
    p = subprocess.run(netns_argv(ns, ["nft", *args]),  # noqa: S603 - argument list
                       input=stdin, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"nft {' '.join(args)} in {ns}: {p.stderr.strip()}")
    return p.stdout


class VictimCounters:
    """Packets from each source that reach the victim (its input hook), sampled by a thread
    every `period` seconds: samples[(t, {source: packets})]."""

    def __init__(self, ns: str, sources: list[str], period: float = 0.1) -> None:
        self.ns, self.sources, self.period = ns, sources, period
        rules = "".join(f'\t\tip saddr {s} counter comment "{s}"\n' for s in sources)
        _nft(ns, ["-f", "-"], f"table inet {VICTIM_TABLE}\ndelete table inet {VICTIM_TABLE}\n"
             f"table inet {VICTIM_TABLE} {{\n\tchain input {{\n"
             "\t\ttype filter hook input priority -10; policy accept;\n"
             f"{rules}\t}}\n}}\n")
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def read(self) -> dict[str, int]:
        out: dict[str, int] = {}
        doc = json.loads(_nft(self.ns, ["-j", "list", "table", "inet", VICTIM_TABLE]))
        for item in doc.get("nftables", []):
            rule = item.get("rule") or {}
            for e in rule.get("expr", []):
                if "counter" in e and "comment" in rule:
                    out[rule["comment"]] = int(e["counter"]["packets"])
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(RuntimeError, ValueError):
                self.samples.append((time.monotonic(), self.read()))
            self._stop.wait(self.period)

    def rate(self, sources: list[str], t0: float, t1: float) -> float:
        """Packets per second from `sources` between t0 and t1 (monotonic s), from the nearest
        samples inside the window, or, when it holds fewer than two (a short window on a
        loaded machine: each sample is an `nft` run), the nearest ones around it."""
        ts = [t for t, _ in self.samples]
        i, j = bisect.bisect_left(ts, t0), bisect.bisect_right(ts, t1) - 1
        if j <= i:
            i = max(0, bisect.bisect_right(ts, t0) - 1)
            j = min(len(ts) - 1, bisect.bisect_left(ts, t1))
        if j <= i:
            return 0.0
        (ta, a), (tb, b) = self.samples[i], self.samples[j]
        return sum(b.get(s, 0) - a.get(s, 0) for s in sources) / (tb - ta)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        with contextlib.suppress(RuntimeError):
            _nft(self.ns, ["delete", "table", "inet", VICTIM_TABLE])


class LegitStream:
    """A device's TCP stream to the victim, paced at `kbyte_s`, with what got through when:
    progress[(t, total bytes sent)]. The sink is a process in the victim's namespace."""

    def __init__(self, device_ns: str, victim_ns: str, victim: str, port: int = 5009,
                 kbyte_s: int = 1000) -> None:
        argv = netns_argv(victim_ns, [sys.executable, "-S", "-c", SINK, victim, str(port)])
        self.sink = subprocess.Popen(argv,  # noqa: S603 - argument list, never a shell
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.progress: list[tuple[float, int]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._args = (device_ns, victim, port, kbyte_s)
        self._thread = threading.Thread(target=self._run, daemon=True)
        time.sleep(0.3)
        self._thread.start()

    def _run(self) -> None:
        ns, ip, port, rate = self._args
        chunk, total = b"x" * 8192, 0
        slot = 8192 / (rate * 1000)
        while not self._stop.is_set():
            conn = netns.tcp_connect(ns, ip, port, timeout=1.0)
            if conn is None:
                self.errors += 1
                continue
            conn.settimeout(1.0)
            nxt = time.monotonic()
            try:
                while not self._stop.is_set():
                    conn.sendall(chunk)
                    total += len(chunk)
                    self.progress.append((time.monotonic(), total))
                    nxt += slot
                    time.sleep(max(0.0, nxt - time.monotonic()))
            except OSError:
                self.errors += 1
            finally:
                conn.close()

    def kbyte_s(self, t0: float, t1: float) -> float:
        """Throughput between t0 and t1, kB/s."""
        pts = [(t, b) for t, b in self.progress if t0 <= t <= t1]
        if len(pts) < 2:
            return 0.0
        return (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0]) / 1000

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)
        with contextlib.suppress(ProcessLookupError):
            self.sink.kill()
        self.sink.wait()


def start_flood(device_ns: str, src: str, victim: str, pps: int,
                seconds: float) -> subprocess.Popen[bytes]:
    """A device's SYN + UDP flood at `pps` packets a second for `seconds` (flood.py)."""
    argv = netns_argv(device_ns, [sys.executable, "-S", "-I", str(FLOOD), src, victim,
                                  str(pps), str(seconds)])
    return subprocess.Popen(argv,  # noqa: S603 - argument list, never a shell
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            p.kill()
        p.wait()

