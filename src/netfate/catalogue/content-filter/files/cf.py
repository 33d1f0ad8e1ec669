"""Content-filter helper: the DNS filter daemon, its ruleset, counters and state.

Usage: cf.py check CFG | render CFG OUT | daemon | queue | status [PID] | export OUT | import IN
Runs inside the NF's network namespace with "$NF_PYTHON" (stdlib only).

The Glasgow paper's parental filter, per user. Every DNS query over UDP that enters on lan
goes to nfnetlink_queue 0 (an iptables NFQUEUE rule: kernels may lack nft's own queue
expression, while iptables-nft reaches the same hook through xt) and so to `cf.py daemon`,
which reads its name and decides (dnsfilter.Policy). An allowed query is accepted and goes
on untouched to whatever resolver the device asked. A blocked one is dropped, and the
device gets an NXDOMAIN (or sinkhole) answer at once, forged from the queried server's
address and sent out of `lan` to the device's MAC (NFQA_HWADDR). DNS over TCP and TLS is
dropped (block_dns_tcp). Without the daemon, queries do not pass (no bypass: fail closed).
Counters go to $NF_STATE_DIR/stats.json (atomic rename, at most every 0.5 s) and survive
stop/start; SIGHUP reloads the config; SIGUSR1 adds imported counters ($NF_STATE_DIR/
import.json); SIGUSR2 writes the counters at once (export-state).
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if TYPE_CHECKING:  # checked in the source tree; in the bundle it is packed next to this file
    from netfate.catalogue._shared import nfcommon as nf

    from . import dnsfilter as df
    from . import nfq
else:
    import dnsfilter as df
    import nfcommon as nf
    import nfq
die = nf.die

TABLE = "fate_cf"
DIR_TABLE = "fate_cf_dir"
QUEUE = 0
MARK_OUT, MARK_IN = 0x1, 0x2
TOP_DOMAINS, TOP_CLIENTS, RECENT = 100, 100, 20
COUNTS = ("queries", "allowed", "blocked", "unparsed", "answered", "not_answered")


def builtin() -> dict[str, list[str]]:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "categories.json")
    doc = nf.load_json(path)
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def normalise(cfg: dict[str, Any]) -> dict[str, Any]:
    return df.normalise(cfg, builtin())


def build_ruleset(cfg: dict[str, Any], ports: tuple[str, str] | None = None) -> str:
    """The filter's ruleset for `nft -f` (its tables replaced atomically)."""
    cfg = normalise(cfg)
    lan, wan = ports or nf.two_ports("content-filter")
    tcp = []
    if cfg["block_dns_tcp"]:
        tcp.append(f"\t\tmeta mark {MARK_OUT:#x} tcp dport {{ 53, 853 }} counter drop"
                   ' comment "dns-tcp"')
    lines = [
        *nf.nft_replace(f"bridge {DIR_TABLE}", f"inet {TABLE}"),
        *nf.nft_bridge_prerouting(DIR_TABLE, nf.nft_port_marks(lan, wan, MARK_OUT, MARK_IN)),
        f"table inet {TABLE} {{",
        "\tchain forward {",
        # before iptables' filter chain (priority 0), which queues what this counts
        "\t\ttype filter hook forward priority filter - 10; policy accept;",
        f'\t\tmeta mark {MARK_OUT:#x} udp dport 53 counter comment "dns"',
        *tcp,
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def queue_rules() -> str:
    """iptables-restore input (the same for IPv4 and IPv6) that queues lan's DNS over UDP to
    the daemon; no --queue-bypass: without the daemon, DNS fails closed."""
    return ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            f"-A FORWARD -m mark --mark {MARK_OUT:#x} -p udp --dport 53"
            f" -j NFQUEUE --queue-num {QUEUE}\nCOMMIT\n")


def cmd_queue() -> None:
    """Load the queue rules (iptables-restore replaces the namespace's filter tables)."""
    for tool in ("iptables-restore", "ip6tables-restore"):
        p = subprocess.run([tool, "-w"], input=queue_rules(), capture_output=True, text=True,
                           check=False)
        if p.returncode != 0:
            die(f"{tool} failed: {p.stderr.strip()}")


def cmd_check(path: str) -> None:
    sys.stdout.write(build_ruleset(nf.load_config_file(path)))


def cmd_render(path: str, out: str) -> None:
    text = build_ruleset(nf.load_config_file(path))
    with open(out + ".tmp", "w") as f:
        f.write(text)
    os.replace(out + ".tmp", out)


# ---- counters ------------------------------------------------------------------------------------
def empty_stats() -> dict[str, Any]:
    return {**dict.fromkeys(COUNTS, 0), "by_category": {}, "by_domain": {}, "by_client": {},
            "recent": []}


def _top(d: dict[str, int], n: int) -> dict[str, int]:
    return dict(sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))[:n])


def merge(into: dict[str, Any], add: dict[str, Any]) -> dict[str, Any]:
    """`add`'s counters added to `into` (imported state, or a previous run's file); bad
    values are ignored. Returns `into`."""
    for k in COUNTS:
        v = add.get(k, 0)
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            into[k] += v
    for k, most in (("by_category", 64), ("by_domain", TOP_DOMAINS),
                    ("by_client", TOP_CLIENTS)):
        src = add.get(k, {})
        if isinstance(src, dict):
            for name, v in src.items():
                if isinstance(name, str) and isinstance(v, int) and v >= 0:
                    into[k][name] = into[k].get(name, 0) + v
        into[k] = _top(into[k], most)
    rec = add.get("recent", [])
    if isinstance(rec, list):
        into["recent"] = [r for r in [*rec, *into["recent"]] if isinstance(r, dict)][-RECENT:]
    return into


def stats_path() -> str:
    return os.path.join(nf.env("NF_STATE_DIR"), "stats.json")


def import_path() -> str:
    return os.path.join(nf.env("NF_STATE_DIR"), "import.json")


def read_stats() -> dict[str, Any]:
    try:
        with open(stats_path(), encoding="utf-8") as f:
            doc = json.load(f)
        return merge(empty_stats(), doc if isinstance(doc, dict) else {})
    except (OSError, ValueError):
        return empty_stats()


# ---- the daemon ----------------------------------------------------------------------------------
class Filter:
    def __init__(self) -> None:
        self.lan = nf.two_ports("content-filter")[0]
        self.stats = read_stats()
        self.dirty = True
        self.reload = True
        self.imports = True
        self.stop = False
        self.last_note: dict[tuple[str, str], float] = {}

    def load(self) -> None:
        self.cfg = normalise(nf.load_active_config())
        self.policy = df.Policy(self.cfg, builtin())
        self.reload = False

    def take_imports(self) -> None:
        self.imports = False
        path = import_path()
        if os.path.exists(path):
            doc = nf.load_json(path)
            merge(self.stats, doc if isinstance(doc, dict) else {})
            nf.unlink_quiet(path)
            self.dirty = True

    def handle(self, q: nfq.Queue, pkt: nfq.Packet, out: socket.socket) -> None:
        st = self.stats
        st["queries"] += 1
        self.dirty = True
        query = df.parse_packet(pkt.payload)
        if query is None:
            st["unparsed"] += 1  # not a query we can read: the resolver will judge it
            q.verdict(pkt.packet_id, True)
            return
        v = self.policy.decide(query.qname)
        if not v.blocked:
            st["allowed"] += 1
            q.verdict(pkt.packet_id, True)
            return
        q.verdict(pkt.packet_id, False)
        st["blocked"] += 1
        if pkt.hwaddr is not None:
            reply = df.reply_packet(query, df.answer(query, self.cfg["answer"]))
            try:
                out.send(df.frame(pkt.hwaddr, self.lan_mac, query, reply))
                st["answered"] += 1
            except OSError:
                st["not_answered"] += 1
        else:
            st["not_answered"] += 1
        cat, rule = str(v.category), str(v.rule)
        for k, name in (("by_category", cat), ("by_domain", rule), ("by_client", query.src)):
            st[k][name] = st[k].get(name, 0) + 1
        st["recent"] = [*st["recent"], {"ts": round(time.time(), 3), "client": query.src,
                                         "qname": query.qname,
                                         "qtype": df.qtype_name(query.qtype), "rule": rule,
                                         "category": cat}][-RECENT:]
        if self.cfg["notify"]:
            key, now = (query.src, rule), time.monotonic()
            if now - self.last_note.get(key, -1e9) >= self.cfg["cooldown_s"]:
                self.last_note[key] = now
                nf.notify("content-blocked", "info", query.src,
                          {"qname": query.qname, "rule": rule, "category": cat})

    def flush(self) -> None:
        if self.dirty:
            self.stats["updated"] = time.time()
            for k in ("by_domain", "by_client"):
                self.stats[k] = _top(self.stats[k], TOP_DOMAINS)
            nf.atomic_write_json(stats_path(), self.stats)
            self.dirty = False

    def run(self) -> None:
        signal.signal(signal.SIGHUP, lambda *_: setattr(self, "reload", True))
        signal.signal(signal.SIGUSR1, lambda *_: setattr(self, "imports", True))
        signal.signal(signal.SIGUSR2, lambda *_: setattr(self, "dirty", True))  # flush now
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stop", True))
        self.load()
        out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        out.bind((self.lan, 0))
        self.lan_mac: bytes = out.getsockname()[4]
        q = nfq.Queue(QUEUE)
        self.flush()  # the marker scripts/start waits for: the queue is bound
        next_flush = time.monotonic() + 0.5
        try:
            while not self.stop:
                try:
                    ready, _, _ = select.select([q], [], [], 0.2)
                except InterruptedError:
                    ready = []
                # after the wait: a signal's handler has run by now (select is resumed after
                # it), so a query that follows an update is judged by the new config
                if self.reload:
                    self.load()
                if self.imports:
                    self.take_imports()
                if ready:
                    try:
                        packets = q.receive()
                    except OSError:
                        continue  # ENOBUFS: the kernel dropped queued packets (fail closed)
                    for p in packets:
                        self.handle(q, p, out)
                if self.dirty and (time.monotonic() >= next_flush or not ready):
                    self.flush()
                    next_flush = time.monotonic() + 0.5
        finally:
            self.flush()
            q.close()


def cmd_daemon() -> None:
    Filter().run()


# ---- status and state ----------------------------------------------------------------------------
def _nft_counters() -> tuple[bool, dict[str, dict[str, int]]]:
    p = subprocess.run(["nft", "-j", "list", "table", "inet", TABLE], capture_output=True,
                       text=True, check=False)
    if p.returncode != 0:
        return False, {}
    out: dict[str, dict[str, int]] = {}
    for item in json.loads(p.stdout).get("nftables", []):
        rule = item.get("rule") or {}
        for e in rule.get("expr", []):
            if "counter" in e and "comment" in rule:
                out[rule["comment"]] = {"packets": e["counter"]["packets"],
                                        "bytes": e["counter"]["bytes"]}
    return True, out


def cmd_status(pid: str = "") -> None:
    try:
        cfg: dict[str, Any] = normalise(nf.load_active_config())
    except SystemExit:
        cfg = {}
    loaded, c = _nft_counters()
    links = nf.read_links()
    zero = {"packets": 0, "bytes": 0}
    stats = read_stats()
    nf.print_json({
        "nf": "content-filter",
        "running": loaded and nf.forwarding(links) and bool(pid),
        "paused": nf.paused(),
        "ruleset_loaded": loaded,
        "daemon_running": bool(pid),
        "daemon_pid": int(pid) if pid.isdigit() else None,
        **stats,
        "dns_queued": c.get("dns", zero),
        "dns_tcp_dropped": c.get("dns-tcp", zero),
        "config": {k: cfg.get(k) for k in ("categories", "answer", "block_dns_tcp", "notify")}
        | {"block": len(cfg.get("block", [])), "allow": len(cfg.get("allow", []))},
        "ports": nf.port_stats(links=links),
    })


def cmd_export(out: str) -> None:
    nf.write_state_doc(out, "content-filter", nf.load_active_config(), counters=read_stats())


def cmd_import(path: str) -> None:
    doc = nf.read_state_doc(path, "content-filter")
    cfg = doc["config"]
    normalise(cfg)  # validate before touching anything
    counters = doc.get("counters", {})
    if not isinstance(counters, dict):
        die("state document: counters must be an object")
    nf.save_active_config(cfg)
    nf.atomic_write_json(import_path(), counters)


if __name__ == "__main__":
    nf.main(sys.argv[1:], globals(), __doc__)
