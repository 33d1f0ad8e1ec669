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
from typing import TYPE_CHECKING, Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if TYPE_CHECKING:  # checked in the source tree; in the bundle it is packed next to this file
    from netfate.catalogue._shared import nfcommon as nf
else:
    import nfcommon as nf
die = nf.die

MAX_KBIT = 100_000_000
MIN_AUTO_BURST = 16 * 1024


def normalise(cfg: dict[str, Any]) -> dict[str, Any]:
    """The config with defaults filled: rates in kbit/s (0 = unlimited), burst in KiB (0 =
    automatic), latency in ms. Dies on unknown keys or values out of range."""
    extra = set(cfg) - {"up_kbit", "down_kbit", "burst_kbyte", "latency_ms"}
    if extra:
        die(f"unknown config keys: {sorted(extra)}")
    return {
        "up_kbit": nf.int_in(cfg, "up_kbit", 0, 0, MAX_KBIT),
        "down_kbit": nf.int_in(cfg, "down_kbit", 0, 0, MAX_KBIT),
        "burst_kbyte": nf.int_in(cfg, "burst_kbyte", 0, 0, 65536),
        "latency_ms": nf.int_in(cfg, "latency_ms", 50, 1, 1000),
    }


def burst_bytes(kbit: int, burst_kbyte: int) -> int:
    """The tbf bucket in bytes: the configured KiB, else 10 ms at the rate, >= 16 KiB."""
    if burst_kbyte:
        return burst_kbyte * 1024
    return max(MIN_AUTO_BURST, kbit * 1000 // 8 // 100)  # 10 ms at the rate


def plan(cfg: dict[str, Any],
         ports: tuple[str, str] | None = None) -> list[tuple[str, str, int]]:
    """[(port, direction, kbit)]: upstream is shaped leaving wan, downstream leaving lan
    (ports: lan, wan; default NF_PORTS)."""
    lan, wan = ports or nf.two_ports("rate-limiter")
    return [(wan, "up", cfg["up_kbit"]), (lan, "down", cfg["down_kbit"])]


def _tc(args: list[str], what: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["tc", *args], capture_output=True, text=True, check=False)
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


def tbf_args(kbit: int, cfg: dict[str, Any]) -> list[str]:
    """The tbf qdisc's arguments for a rate (kbit/s) and a normalised config."""
    return ["tbf", "rate", f"{kbit}kbit", "burst", str(burst_bytes(kbit, cfg["burst_kbyte"])),
            "latency", f"{cfg['latency_ms']}ms"]


def shaper_path() -> str:
    return os.path.join(nf.env("NF_STATE_DIR"), "shaper.tc")


def batch_lines(cfg: dict[str, Any], ports: tuple[str, str] | None = None) -> list[str]:
    """The `tc -batch` lines that install the config's shapers (none for unlimited)."""
    cfg = normalise(cfg)
    return [" ".join(["qdisc", "replace", "dev", dev, "root", *tbf_args(kbit, cfg)])
            for dev, _direction, kbit in plan(cfg, ports) if kbit]


def render(cfg: dict[str, Any], out: str) -> None:
    lines = batch_lines(cfg)
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
        _tc(["qdisc", "replace", "dev", dev, "root", *tbf_args(kbit, cfg)],
            f"setting the shaper on {dev}")


def cmd_apply() -> None:
    apply(nf.load_active_config())


def cmd_check(path: str) -> None:
    normalise(nf.load_config_file(path))


def cmd_render(path: str, out: str) -> None:
    render(nf.load_config_file(path), out)


def cmd_clear() -> None:
    for dev in nf.two_ports("rate-limiter"):
        if _root_kind(dev) == "tbf":
            _tc(["qdisc", "del", "dev", dev, "root"], f"removing the shaper on {dev}", check=False)


def shaper_status(direction: str, kbit: int, q: dict[str, Any]) -> dict[str, Any]:
    """One port's shaper in the status: its limit and what `tc -s -j qdisc show` reports
    for the root qdisc `q` (rates in kbit/s, sizes in bytes)."""
    opts = q.get("options", {}) if q.get("kind") == "tbf" else {}
    return {
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


def cmd_status() -> None:
    try:
        cfg = normalise(nf.load_active_config())
    except SystemExit:
        cfg = {"up_kbit": None, "down_kbit": None, "burst_kbyte": None, "latency_ms": None}
    links = nf.read_links()
    shapers: dict[str, Any] = {}
    for dev, direction, kbit in plan(cfg) if cfg["up_kbit"] is not None else []:
        proc = _tc(["-s", "-j", "qdisc", "show", "dev", dev, "root"], "tc", check=False)
        q: dict[str, Any] = {}
        try:
            q = next((x for x in json.loads(proc.stdout or "[]") if x.get("root")), {})
        except ValueError:
            pass
        shapers[dev] = shaper_status(direction, kbit, q)
    nf.print_json({
        "nf": "rate-limiter",
        "running": nf.forwarding(links),
        "paused": nf.paused(),
        "config": cfg,
        "shapers": shapers,
        "ports": nf.port_stats(links=links),
    })


def cmd_export(out: str) -> None:
    nf.write_state_doc(out, "rate-limiter", nf.load_active_config())


def cmd_import(path: str) -> None:
    doc = nf.read_state_doc(path, "rate-limiter")
    cfg = doc["config"]
    normalise(cfg)
    nf.save_active_config(cfg)
    apply(cfg)


if __name__ == "__main__":
    nf.main(sys.argv[1:], globals(), __doc__)
