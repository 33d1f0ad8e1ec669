"""Troubleshooter helper: address on br0, on-demand ping / traceroute / capture requests.

Usage: ts.py check CONFIG | addr | submit | run ID | status | export OUT | import IN
Runs inside the NF's network namespace with "$NF_PYTHON" (stdlib only).

A request (config "request", carried by an update) runs in the background: `submit` writes
$NF_RUN_DIR/req-<id>.json and the lifecycle script starts `ts.py run <id>` as a daemon
(PID file req-<id>.pid). The runner writes $NF_STATE_DIR/results/<id>.json when the tool ends.
Tools are always run from an argv list, never through a shell, and always bounded by timeout(1).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if TYPE_CHECKING:  # checked in the source tree; in the bundle it is packed next to this file
    from netfate.catalogue._shared import nfcommon as nf
else:
    import nfcommon as nf
die = nf.die

ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,32}$")
# Same as the descriptor's schema: no word may start with '-' (no tcpdump options).
FILTER_RE = re.compile(r"^(?!-)(?!.*\s-)[A-Za-z0-9 .:/()!<>=&|_\[\]*+-]*$")
OUTPUT_MAX = 64 * 1024
SNAPLEN = 2048
TRACEROUTE_MAX_S = 60
BRIDGE = "br0"


def results_dir() -> str:
    d = os.path.join(nf.env("NF_STATE_DIR"), "results")
    os.makedirs(d, exist_ok=True)
    return d


def _ipv4(v: Any, where: str) -> str:
    if not isinstance(v, str):
        die(f"{where}: must be an IPv4 address")
    try:
        return str(ipaddress.IPv4Address(v))
    except ValueError as e:
        die(f"{where}: {e}")


def normalise_request(r: Any) -> dict[str, Any]:
    """A request with defaults filled (count, seconds, packets, filter, interface); dies on
    anything the descriptor's schema would refuse."""
    if not isinstance(r, dict):
        die("request: must be an object")
    bad = set(r) - {"id", "tool", "target", "count", "seconds", "packets", "filter", "interface"}
    if bad:
        die(f"request: unknown keys {sorted(bad)}")
    rid = r.get("id")
    if not isinstance(rid, str) or not ID_RE.match(rid):
        die("request.id: must match ^[a-zA-Z0-9_-]{1,32}$")
    tool = r.get("tool")
    if tool not in ("ping", "traceroute", "capture"):
        die("request.tool: must be ping, traceroute or capture")
    out: dict[str, Any] = {"id": rid, "tool": tool}
    if tool in ("ping", "traceroute"):
        if "target" not in r:
            die(f"request.target: required for {tool}")
    if "target" in r:
        out["target"] = _ipv4(r["target"], "request.target")
    out["count"] = nf.int_in(r, "count", 3, 1, 100, "request")
    out["seconds"] = nf.int_in(r, "seconds", 5, 1, 30, "request")
    out["packets"] = nf.int_in(r, "packets", 100, 1, 1000, "request")
    flt = r.get("filter", "")
    if not isinstance(flt, str) or len(flt) > 200 or not FILTER_RE.match(flt):
        die("request.filter: at most 200 characters of a tcpdump expression; no word may start "
            "with '-'")
    out["filter"] = flt
    iface = r.get("interface", BRIDGE)
    if iface not in ("lan", "wan", BRIDGE):
        die("request.interface: must be lan, wan or br0")
    out["interface"] = iface
    return out


def normalise(cfg: dict[str, Any]) -> dict[str, Any]:
    bad = set(cfg) - {"address", "gateway", "request", "max_results"}
    if bad:
        die(f"unknown config keys: {sorted(bad)}")
    out: dict[str, Any] = {"max_results": nf.int_in(cfg, "max_results", 50, 1, 1000, "config")}
    if cfg.get("address") is not None:
        a = cfg["address"]
        if not isinstance(a, str) or "/" not in a:
            die("address: must be an IPv4 address with prefix length, e.g. 192.0.2.10/24")
        try:
            iface = ipaddress.IPv4Interface(a)
        except ValueError as e:
            die(f"address: {e}")
        out["address"] = str(iface)
    if cfg.get("gateway") is not None:
        gw = _ipv4(cfg["gateway"], "gateway")
        if "address" not in out:
            die("gateway: needs an address")
        if ipaddress.IPv4Address(gw) not in ipaddress.IPv4Interface(out["address"]).network:
            die("gateway: must be inside the address's subnet")
        out["gateway"] = gw
    if cfg.get("request") is not None:
        out["request"] = normalise_request(cfg["request"])
    return out


def _ip(args: list[str], what: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and p.returncode != 0:
        die(f"{what} failed: {p.stderr.strip()}")
    return p


# ---- address and default route on br0
def cmd_addr() -> None:
    cfg = normalise(nf.load_active_config())
    want = cfg.get("address")
    p = _ip(["-j", "-4", "addr", "show", "dev", BRIDGE], "ip addr show", check=False)
    have: list[str] = []
    try:
        for link in json.loads(p.stdout or "[]"):
            for a in link.get("addr_info", []):
                have.append(f"{a['local']}/{a['prefixlen']}")
    except (ValueError, KeyError):
        pass
    for a in have:
        if a != want:
            _ip(["addr", "del", a, "dev", BRIDGE], f"removing {a} from {BRIDGE}", check=False)
    if want and want not in have:
        _ip(["addr", "add", want, "dev", BRIDGE], f"adding {want} to {BRIDGE}")
    gw = cfg.get("gateway")
    if gw and nf.forwarding():  # a route via a down device cannot be added; start adds it
        _ip(["route", "replace", "default", "via", gw, "dev", BRIDGE], "setting the default route")
    elif not gw:
        _ip(["route", "del", "default", "dev", BRIDGE], "", check=False)


# ---- requests
def _pid_alive(name: str) -> bool:
    """Same test as common.sh daemon_pid: PID file "PID STARTTIME" and a live process."""
    try:
        with open(os.path.join(nf.env("NF_RUN_DIR"), f"{name}.pid")) as f:
            pid_s, _, st = f.read().strip().partition(" ")
        with open(f"/proc/{int(pid_s)}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0] != "Z" and (not st or fields[19] == st)
    except (OSError, ValueError, IndexError):
        return False


def cmd_submit() -> None:
    """Print the id of the request to start, if the config carries one not run yet."""
    cfg = normalise(nf.load_active_config())
    req = cfg.get("request")
    if not req:
        return
    rid = req["id"]
    if os.path.exists(os.path.join(results_dir(), f"{rid}.json")) or _pid_alive(f"req-{rid}"):
        print(f"troubleshooter: request {rid} already run or running, not repeated",
              file=sys.stderr)
        return
    nf.atomic_write_json(os.path.join(nf.env("NF_RUN_DIR"), f"req-{rid}.json"), req)
    print(rid)


def tool_argv(req: dict[str, Any], pcap: str) -> tuple[list[str], int]:
    """(argv, seconds to wait at most) for a normalised request; a capture writes `pcap`."""
    tool = req["tool"]
    if tool == "ping":
        interval = 0.2
        deadline = int(req["count"] * interval) + 2
        return (["timeout", "-k", "1", str(deadline + 2), "ping", "-n", "-c", str(req["count"]),
                 "-i", str(interval), "-W", "1", "-w", str(deadline), req["target"]], deadline + 3)
    if tool == "traceroute":
        return (["timeout", "-k", "1", str(TRACEROUTE_MAX_S), "traceroute", "-n", "-w", "1",
                 "-q", str(min(req["count"], 10)), "-m", "30", req["target"]],
                TRACEROUTE_MAX_S + 1)
    argv = ["timeout", "-k", "1", str(req["seconds"]), "tcpdump", "-n", "-i", req["interface"],
            "-s", str(SNAPLEN), "-c", str(req["packets"]), "-U", "-Z", "root", "-w", pcap]
    if req.get("target"):
        # capture: target narrows to that host (combined with the filter, if any)
        words = ["host", req["target"]]
        if req["filter"].strip():
            words += ["and", "(", *req["filter"].split(), ")"]
    else:
        words = req["filter"].split()
    return [*argv, "--", *words], req["seconds"] + 2


def pcap_count(path: str) -> int:
    """Count records in a classic pcap file (tcpdump -w)."""
    try:
        with open(path, "rb") as f:
            hdr = f.read(24)
            if len(hdr) < 24:
                return 0
            endian = "<" if hdr[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
            n = 0
            while True:
                rec = f.read(16)
                if len(rec) < 16:
                    return n
                incl = struct.unpack(endian + "IIII", rec)[2]
                f.seek(incl, 1)
                n += 1
    except OSError:
        return 0


def truncate(text: str) -> str:
    """At most OUTPUT_MAX bytes of UTF-8, marked when cut."""
    b = text.encode("utf-8", "replace")
    if len(b) <= OUTPUT_MAX:
        return text
    return b[: OUTPUT_MAX - 32].decode("utf-8", "ignore") + "\n[output truncated at 64 KiB]\n"


def cmd_run(rid: str) -> None:
    if not ID_RE.match(rid):
        die("bad request id")
    run_dir = nf.env("NF_RUN_DIR")
    req_path = os.path.join(run_dir, f"req-{rid}.json")
    req = normalise_request(nf.load_json(req_path))
    rdir = results_dir()
    pcap = os.path.join(rdir, f"{rid}.pcap")
    argv, limit = tool_argv(req, pcap)
    started = time.time()
    result: dict[str, Any] = {"id": rid, "tool": req["tool"], "target": req.get("target"),
                              "request": req, "started": started}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace")

    def cancel(*_: Any) -> None:
        proc.terminate()
        result["cancelled"] = True

    signal.signal(signal.SIGTERM, cancel)
    signal.signal(signal.SIGINT, cancel)
    try:
        out, _ = proc.communicate(timeout=limit + 5)
    except subprocess.TimeoutExpired:  # timeout(1) should have ended it already
        proc.kill()
        out, _ = proc.communicate()
    result["exit_code"] = proc.returncode
    result["timed_out"] = proc.returncode == 124
    if req["tool"] == "capture":
        result["pcap"] = pcap if os.path.exists(pcap) else None
        result["packets_captured"] = pcap_count(pcap)
        text = out
        if result["pcap"]:
            dec = subprocess.run(["tcpdump", "-n", "-r", pcap], capture_output=True, text=True,
                                 errors="replace", timeout=30, check=False)
            text = dec.stdout + "\n" + out
        # a capture ended by its time limit (124) or packet count (0) both succeeded
        result["ok"] = proc.returncode in (0, 124) and not result.get("cancelled")
        out = text
    else:
        result["ok"] = proc.returncode == 0
    result["output"] = truncate(out)
    result["ended"] = time.time()
    nf.atomic_write_json(os.path.join(rdir, f"{rid}.json"), result)
    nf.unlink_quiet(req_path)
    _prune()


def _prune() -> None:
    try:
        keep = normalise(nf.load_active_config())["max_results"]
    except SystemExit:
        keep = 50
    rdir = results_dir()
    docs = sorted((os.path.getmtime(os.path.join(rdir, f)), f[:-5])
                  for f in os.listdir(rdir) if f.endswith(".json"))
    for _, rid in docs[: max(0, len(docs) - keep)]:
        for ext in (".json", ".pcap"):
            nf.unlink_quiet(os.path.join(rdir, rid + ext))


def summary(r: dict[str, Any]) -> str:
    """One line on a result: ping's statistics, traceroute's hop count, packets captured."""
    out = r.get("output") or ""
    if r.get("tool") == "ping":
        for ln in out.splitlines():
            if "packets transmitted" in ln:
                return ln.strip()
    elif r.get("tool") == "traceroute":
        hops = [ln for ln in out.splitlines()[1:] if ln.strip()[:1].isdigit()]
        return f"{len(hops)} hops"
    elif r.get("tool") == "capture":
        return f"{r.get('packets_captured', 0)} packets captured"
    return ""


def _results() -> list[dict[str, Any]]:
    rdir = results_dir()
    out = []
    for f in sorted(os.listdir(rdir)):
        if not f.endswith(".json"):
            continue
        try:
            with open(os.path.join(rdir, f)) as fh:
                r = json.load(fh)
        except (OSError, ValueError):
            continue
        out.append(r)
    out.sort(key=lambda r: r.get("started", 0))
    return out


def cmd_status() -> None:
    links = nf.read_links()
    try:
        cfg = normalise(nf.load_active_config())
    except SystemExit:
        cfg = {}
    running = []
    run_dir = nf.env("NF_RUN_DIR")
    for f in sorted(os.listdir(run_dir)):
        if f.startswith("req-") and f.endswith(".pid") and _pid_alive(f[:-4]):
            rid = f[4:-4]
            try:
                req = nf.load_json(os.path.join(run_dir, f"req-{rid}.json"))
            except SystemExit:
                req = {}
            running.append({"id": rid, "tool": req.get("tool"), "target": req.get("target")})
    addrs = []
    br = links.get(BRIDGE)
    if br is not None:
        p = _ip(["-j", "-4", "addr", "show", "dev", BRIDGE], "", check=False)
        try:
            addrs = [f"{a['local']}/{a['prefixlen']}" for ln in json.loads(p.stdout or "[]")
                     for a in ln.get("addr_info", [])]
        except (ValueError, KeyError):
            pass
    status = {
        "nf": "troubleshooter",
        "running": nf.forwarding(links),
        "paused": nf.paused(),
        "address": cfg.get("address"),
        "gateway": cfg.get("gateway"),
        "addresses": addrs,
        "results": [
            {"id": r.get("id"), "tool": r.get("tool"), "target": r.get("target"),
             "ok": r.get("ok"), "exit_code": r.get("exit_code"), "started": r.get("started"),
             "ended": r.get("ended"), "summary": summary(r),
             **({"pcap": r.get("pcap"), "packets_captured": r.get("packets_captured")}
                if r.get("tool") == "capture" else {})}
            for r in _results()
        ],
        "running_requests": running,
        "ports": nf.port_stats(links=links),
    }
    nf.print_json(status)


def cmd_check(path: str) -> None:
    normalise(nf.load_config_file(path))


def exported_results(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results as a state document carries them: capture files stay behind (marked
    pcap_not_migrated); their decoded text is in "output"."""
    out = []
    for r in results:
        r = dict(r)
        if r.get("pcap"):
            r["pcap"] = None
            r["pcap_not_migrated"] = True
        out.append(r)
    return out


def imported_results(results: object) -> list[dict[str, Any]]:
    """The results of a state document, checked (each with a valid id), output bounded and
    without a pcap path. Dies on a malformed list."""
    if not isinstance(results, list):
        die("state document: results must be a list")
    for r in results:
        if not isinstance(r, dict) or not isinstance(r.get("id"), str) or not ID_RE.match(r["id"]):
            die("state document: result without a valid id")
        if isinstance(r.get("output"), str):
            r["output"] = truncate(r["output"])
        r["pcap"] = None
    return results


def cmd_export(out: str) -> None:
    nf.write_state_doc(out, "troubleshooter", nf.load_active_config(),
                       results=exported_results(_results()))


def cmd_import(path: str) -> None:
    doc = nf.read_state_doc(path, "troubleshooter")
    cfg = doc["config"]
    normalise(cfg)
    results = imported_results(doc.get("results", []))
    rdir = results_dir()
    for r in results:
        nf.atomic_write_json(os.path.join(rdir, f"{r['id']}.json"), r)
    nf.save_active_config(cfg)
    cmd_addr()


if __name__ == "__main__":
    nf.main(sys.argv[1:], globals(), __doc__)
