"""Rate-limiter helper: tc tbf shapers on the egress of wan (upstream) and lan (downstream).

Usage: rl.py apply | check CONFIG | render CONFIG OUT | clear | status | export OUT | import IN

`render` compiles a config into a `tc -batch` file (the shapers to install); start loads it with
one tc run, so Python is not on the start path. `apply` (update, import) changes the shapers live
and re-renders the file.
Runs inside the NF's network namespace with "$NF_PYTHON" (stdlib only).
(`tc ... police` is not available on the target kernel, so only shaping is used.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nfcommon import (
    _links,
    die,
    env,
    forwarding,
    load_active_config,
    load_json,
    port_stats,
    read_state_doc,
    save_active_config,
    state_doc,
)

MAX_KBIT = 100_000_000
MIN_AUTO_BURST = 16 * 1024


def _ports() -> tuple[str, str]:
    ports = env("NF_PORTS", "lan wan").split()
    if len(ports) != 2:
        die(f"rate-limiter needs exactly two ports (lan wan), NF_PORTS={ports}")
    return ports[0], ports[1]


def _int(cfg: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    v = cfg.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        die(f"{key}: must be an integer {lo}-{hi}")
    return v


def normalise(cfg: dict[str, Any]) -> dict[str, Any]:
    extra = set(cfg) - {"up_kbit", "down_kbit", "burst_kbyte", "latency_ms"}
    if extra:
        die(f"unknown config keys: {sorted(extra)}")
    return {
        "up_kbit": _int(cfg, "up_kbit", 0, 0, MAX_KBIT),
        "down_kbit": _int(cfg, "down_kbit", 0, 0, MAX_KBIT),
        "burst_kbyte": _int(cfg, "burst_kbyte", 0, 0, 65536),
        "latency_ms": _int(cfg, "latency_ms", 50, 1, 1000),
    }


def burst_bytes(kbit: int, burst_kbyte: int) -> int:
    if burst_kbyte:
        return burst_kbyte * 1024
    return max(MIN_AUTO_BURST, kbit * 1000 // 8 // 100)  # 10 ms at the rate


def plan(cfg: dict[str, Any]) -> list[tuple[str, str, int]]:
    """[(port, direction, kbit)]: upstream is shaped leaving wan, downstream leaving lan."""
    lan, wan = _ports()
    return [(wan, "up", cfg["up_kbit"]), (lan, "down", cfg["down_kbit"])]


def _tc(args: list[str], what: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["tc", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        die(f"{what} failed: {proc.stderr.strip()}")
    return proc


def _root_kind(dev: str) -> str | None:
    proc = _tc(["-j", "qdisc", "show", "dev", dev, "root"], "tc qdisc show", check=False)
    try:
        for q in json.loads(proc.stdout or "[]"):
            if q.get("root"):
                return str(q.get("kind"))
    except ValueError:
        pass
    return None


def _tbf_args(kbit: int, cfg: dict[str, Any]) -> list[str]:
    return ["tbf", "rate", f"{kbit}kbit", "burst", str(burst_bytes(kbit, cfg["burst_kbyte"])),
            "latency", f"{cfg['latency_ms']}ms"]


def shaper_path() -> str:
    return os.path.join(env("NF_STATE_DIR"), "shaper.tc")


def render(cfg: dict[str, Any], out: str) -> None:
    cfg = normalise(cfg)
    lines = [" ".join(["qdisc", "replace", "dev", dev, "root", *_tbf_args(kbit, cfg)])
             for dev, _direction, kbit in plan(cfg) if kbit]
    with open(out + ".tmp", "w") as f:
        f.write("".join(ln + "\n" for ln in lines))
    os.replace(out + ".tmp", out)


def apply(cfg: dict[str, Any]) -> None:
    cfg = normalise(cfg)
    render(cfg, shaper_path())
    for dev, _direction, kbit in plan(cfg):
        if kbit == 0:
            if _root_kind(dev) == "tbf":
                _tc(["qdisc", "del", "dev", dev, "root"], f"removing the shaper on {dev}")
            continue
        _tc(["qdisc", "replace", "dev", dev, "root", *_tbf_args(kbit, cfg)],
            f"setting the shaper on {dev}")


def cmd_apply() -> None:
    apply(load_active_config())


def cmd_check(path: str) -> None:
    cfg = load_json(path)
    if not isinstance(cfg, dict):
        die("config must be a JSON object")
    normalise(cfg)


def cmd_render(path: str, out: str) -> None:
    cfg = load_json(path)
    if not isinstance(cfg, dict):
        die("config must be a JSON object")
    render(cfg, out)


def cmd_clear() -> None:
    for dev in _ports():
        if _root_kind(dev) == "tbf":
            _tc(["qdisc", "del", "dev", dev, "root"], f"removing the shaper on {dev}", check=False)


def cmd_status() -> None:
    try:
        cfg = normalise(load_active_config())
    except SystemExit:
        cfg = {"up_kbit": None, "down_kbit": None, "burst_kbyte": None, "latency_ms": None}
    links = _links()
    shapers: dict[str, Any] = {}
    for dev, direction, kbit in plan(cfg) if cfg["up_kbit"] is not None else []:
        proc = _tc(["-s", "-j", "qdisc", "show", "dev", dev, "root"], "tc", check=False)
        q: dict[str, Any] = {}
        try:
            q = next((x for x in json.loads(proc.stdout or "[]") if x.get("root")), {})
        except ValueError:
            pass
        opts = q.get("options", {}) if q.get("kind") == "tbf" else {}
        shapers[dev] = {
            "direction": direction,
            "limit_kbit": kbit,
            "qdisc": q.get("kind"),
            "rate_kbit": opts["rate"] * 8 // 1000 if "rate" in opts else None,
            "burst_bytes": opts.get("burst"),
            "sent_bytes": q.get("bytes", 0),
            "sent_packets": q.get("packets", 0),
            "drops": q.get("drops", 0),
            "overlimits": q.get("overlimits", 0),
            "backlog_bytes": q.get("backlog", 0),
            "qlen": q.get("qlen", 0),
        }
    status = {
        "nf": "rate-limiter",
        "running": forwarding(links),
        "paused": os.path.exists(os.path.join(env("NF_RUN_DIR"), "paused")),
        "config": cfg,
        "shapers": shapers,
        "ports": port_stats(links=links),
    }
    json.dump(status, sys.stdout)
    sys.stdout.write("\n")


def cmd_export(out: str) -> None:
    doc = state_doc("rate-limiter", load_active_config())
    with open(out + ".tmp", "w") as f:
        json.dump(doc, f)
    os.replace(out + ".tmp", out)


def cmd_import(path: str) -> None:
    doc = read_state_doc(path, "rate-limiter")
    cfg = doc["config"]
    normalise(cfg)
    save_active_config(cfg)
    apply(cfg)


def main(argv: list[str]) -> None:
    cmds = {
        "apply": (cmd_apply, 0), "check": (cmd_check, 1), "render": (cmd_render, 2),
        "clear": (cmd_clear, 0),
        "status": (cmd_status, 0), "export": (cmd_export, 1), "import": (cmd_import, 1),
    }
    if not argv or argv[0] not in cmds or len(argv) - 1 != cmds[argv[0]][1]:
        die("usage: rl.py apply | check CONFIG | render CONFIG OUT | clear | status | export OUT"
            " | import IN", 2)
    fn, _ = cmds[argv[0]]
    fn(*argv[1:])  # type: ignore[operator]


if __name__ == "__main__":
    main(sys.argv[1:])
