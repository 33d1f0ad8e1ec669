"""Troubleshooter helper: address on br0, on-demand ping / traceroute / capture requests.

Usage: ts.py check CONFIG | addr | submit | run ID | status | export OUT | import IN
Runs inside the NF's network namespace with "$NF_PYTHON" (stdlib only).

A request (config "request", carried by an update) runs in the background: `submit` writes
$NF_RUN_DIR/req-<id>.json and the lifecycle script starts `ts.py run <id>` as a daemon
(PID file req-<id>.pid). The runner writes $NF_STATE_DIR/results/<id>.json when the tool ends.
Tools are always run from an argv list, never through a shell, and always bounded by timeout(1).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if TYPE_CHECKING:  # checked in the source tree; in the bundle it is packed next to this file
    from netfate.catalogue._shared import nfcommon as nf

    from . import tslib
else:
    import nfcommon as nf
    import tslib
die = nf.die
BRIDGE = tslib.BRIDGE


def results_dir() -> str:
    d = os.path.join(nf.env("NF_STATE_DIR"), "results")
    os.makedirs(d, exist_ok=True)
    return d


def _ip(args: list[str], what: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and p.returncode != 0:
        die(f"{what} failed: {p.stderr.strip()}")
    return p


# ---- address and default route on br0
def cmd_addr() -> None:
    cfg = tslib.normalise(nf.load_active_config())
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
    if cfg.get("mac"):
        _ip(["link", "set", "dev", BRIDGE, "address", cfg["mac"]], "setting br0's MAC")
    _beside(bool(cfg.get("beside")))
    gw = cfg.get("gateway")
    if gw and nf.forwarding():  # a route via a down device cannot be added; start adds it
        _ip(["route", "replace", "default", "via", gw, "dev", BRIDGE], "setting the default route")
    elif not gw:
        _ip(["route", "del", "default", "dev", BRIDGE], "", check=False)


BESIDE_TABLE = "netfate_ts_beside"


def _beside(on: bool) -> None:
    """Beside the path (an orchestrator's probe, whose lan port gets copies of a user's
    traffic from a switch mirror), nothing received on lan is bridged or delivered: copies
    sent on out of wan would reach the network twice (and a copy of the probe's own frame
    would loop), copies delivered would be duplicate replies. Captures on lan still see them
    (packet sockets tap a frame before the bridge's hooks). In the path, lan is bridged."""
    lan, _ = nf.two_ports("troubleshooter")
    lines = nf.nft_replace(f"bridge {BESIDE_TABLE}")
    if on:
        lines += nf.nft_bridge_prerouting(BESIDE_TABLE, [f'\t\tiifname "{lan}" drop'])
    p = subprocess.run(["nft", "-f", "-"], input="\n".join(lines) + "\n", capture_output=True,
                       text=True, check=False, timeout=10)
    if p.returncode != 0:
        die(f"nft (beside the path: {on}) failed: {p.stderr.strip()}")


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
    cfg = tslib.normalise(nf.load_active_config())
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


def cmd_run(rid: str) -> None:
    if not tslib.ID_RE.fullmatch(rid):
        die("bad request id")
    run_dir = nf.env("NF_RUN_DIR")
    req_path = os.path.join(run_dir, f"req-{rid}.json")
    req = tslib.normalise_request(nf.load_json(req_path))
    rdir = results_dir()
    pcap = os.path.join(rdir, f"{rid}.pcap")
    argv, limit = tslib.tool_argv(req, pcap)
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
        result["packets_captured"] = tslib.pcap_count(pcap)
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
    result["output"] = tslib.truncate(out)
    result["ended"] = time.time()
    nf.atomic_write_json(os.path.join(rdir, f"{rid}.json"), result)
    nf.unlink_quiet(req_path)
    _prune()


def _prune() -> None:
    try:
        keep = tslib.normalise(nf.load_active_config())["max_results"]
    except SystemExit:
        keep = 50
    rdir = results_dir()
    docs = sorted((os.path.getmtime(os.path.join(rdir, f)), f[:-5])
                  for f in os.listdir(rdir) if f.endswith(".json"))
    for _, rid in docs[: max(0, len(docs) - keep)]:
        for ext in (".json", ".pcap"):
            nf.unlink_quiet(os.path.join(rdir, rid + ext))


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
        cfg = tslib.normalise(nf.load_active_config())
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
        "mac": (br or {}).get("address"),
        "beside": bool(cfg.get("beside")),
        "addresses": addrs,
        "results": [
            {"id": r.get("id"), "tool": r.get("tool"), "target": r.get("target"),
             "ok": r.get("ok"), "exit_code": r.get("exit_code"), "started": r.get("started"),
             "ended": r.get("ended"), "summary": tslib.summary(r),
             **({"pcap": r.get("pcap"), "packets_captured": r.get("packets_captured")}
                if r.get("tool") == "capture" else {})}
            for r in _results()
        ],
        "running_requests": running,
        "ports": nf.port_stats(links=links),
    }
    nf.print_json(status)


def cmd_check(path: str) -> None:
    tslib.normalise(nf.load_config_file(path))


def cmd_export(out: str) -> None:
    nf.write_state_doc(out, "troubleshooter", nf.load_active_config(),
                       results=tslib.exported_results(_results()))


def cmd_import(path: str) -> None:
    doc = nf.read_state_doc(path, "troubleshooter")
    cfg = doc["config"]
    tslib.normalise(cfg)
    results = tslib.imported_results(doc.get("results", []))
    rdir = results_dir()
    for r in results:
        nf.atomic_write_json(os.path.join(rdir, f"{r['id']}.json"), r)
    nf.save_active_config(cfg)
    cmd_addr()


if __name__ == "__main__":
    nf.main(sys.argv[1:], globals(), __doc__)
