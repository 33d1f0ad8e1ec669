"""Shared helpers for NetFATE native NF helper programs (stdlib only).

This is their one home: `catalogue.bundle_bytes` packs it into every catalogue bundle as
files/nfcommon.py (a bundle is shipped and extracted on its own), where each helper imports it
as `nfcommon`. Run with "$NF_PYTHON" inside the NF's network namespace. The environment
variables read here are the NF's inputs from the native driver (catalogue/README.md).

Errors in a helper end it: `die` prints "error: [nf/action] message" on stderr and exits
non-zero (SystemExit), which the lifecycle script and then the driver report.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from typing import Any, NoReturn

STATE_FORMAT = "netfate-state/1"


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        die(f"{name} is not set")
    return value


def die(msg: str, code: int = 1) -> NoReturn:
    nf = os.environ.get("NF_NAME", "nf")
    action = os.environ.get("NF_ACTION", "?")
    print(f"error: [{nf}/{action}] {msg}", file=sys.stderr)
    sys.exit(code)


EX_CONFIG = 78  # sysexits.h: the platform reads it as "the configuration is at fault"


def config_error(msg: str) -> NoReturn:
    """Exit EX_CONFIG: the NF cannot work with its configuration on this node (a file it
    names is missing, a key the node lacks). The orchestrator records the user's fault
    (422), not the node's, and does not retry the same configuration (catalogue README,
    "Script contract")."""
    die(msg, EX_CONFIG)


def active_config_path() -> str:
    return os.path.join(env("NF_STATE_DIR"), "config.json")


def load_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        die(f"{path} does not exist")
    except (OSError, ValueError) as e:
        die(f"cannot read {path}: {e}")


def load_active_config() -> dict[str, Any]:
    path = active_config_path()
    if not os.path.exists(path):
        path = env("NF_CONFIG")
    cfg: object = load_json(path)
    if not isinstance(cfg, dict):
        die(f"{path}: config must be a JSON object")
    return cfg


def load_config_file(path: str) -> dict[str, Any]:
    """A config given on the command line (check, render): a JSON object, or die."""
    cfg: object = load_json(path)
    if not isinstance(cfg, dict):
        die("config must be a JSON object")
    return cfg


def two_ports(nf: str) -> tuple[str, str]:
    """(lan, wan): the NF's two ports from NF_PORTS, in descriptor order."""
    ports = env("NF_PORTS", "lan wan").split()
    if len(ports) != 2:
        die(f"{nf} needs exactly two ports (lan wan), NF_PORTS={ports}")
    return ports[0], ports[1]


def int_in(d: dict[str, Any], key: str, default: int, lo: int, hi: int,
           where: str = "") -> int:
    """d[key] (default if absent), which must be an int (not a bool) in lo..hi, or die
    naming it as `where.key`."""
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        die(f"{where + '.' if where else ''}{key}: must be an integer {lo}-{hi}")
    return v


def cidr(value: Any, where: str) -> str:
    """An IPv4 address or network as a network string (host bits cleared, e.g.
    "10.1.2.3/24" -> "10.1.2.0/24", "10.1.2.3" -> "10.1.2.3/32"), or die naming `where`."""
    if not isinstance(value, str):
        die(f"{where}: must be an IPv4 address or CIDR string")
    try:
        return str(ipaddress.IPv4Network(value, strict=False))
    except ValueError as e:
        die(f"{where}: {e}")


def sysctl(key: str, value: str) -> None:
    """Set a (network namespace's) sysctl, e.g. sysctl("net.ipv4.ip_forward", "1"); or die.
    Nothing is written when it has the value already: in a container /proc/sys is read-only
    and the runtime set the descriptor's `sysctls` before the NF started."""
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        with open(path) as f:
            if f.read().strip() == value:
                return
    except OSError:
        pass
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        die(f"cannot set {key}={value}: {e} (an NF in a container gets it from its "
            "descriptor's sysctls)")


def paused() -> bool:
    """The NF is paused (scripts/pause left $NF_RUN_DIR/paused)."""
    return os.path.exists(os.path.join(env("NF_RUN_DIR"), "paused"))


def print_json(doc: Any) -> None:
    """One JSON document on stdout (status prints exactly one)."""
    json.dump(doc, sys.stdout)
    sys.stdout.write("\n")


def unlink_quiet(path: str) -> None:
    """Remove a file if it is there."""
    try:
        os.unlink(path)
    except OSError:
        pass


def main(argv: list[str], namespace: dict[str, Any], doc: str | None) -> None:
    """Run a helper's command: argv[0] names the function cmd_<argv[0]> in `namespace` (the
    helper's globals()), which gets the remaining arguments, as many as its parameters take.
    Anything else dies (exit 2) with the "Usage:" line of `doc` (the helper's docstring)."""
    fn = namespace.get(f"cmd_{argv[0]}") if argv else None
    if callable(fn) and hasattr(fn, "__code__"):
        most = fn.__code__.co_argcount
        if most - len(fn.__defaults__ or ()) <= len(argv) - 1 <= most:
            fn(*argv[1:])
            return
    lines = [ln.strip() for ln in (doc or "").splitlines()]
    usage = next((ln.removeprefix("Usage:").strip() for ln in lines if ln.startswith("Usage:")),
                 "see the helper's docstring")
    die(f"usage: {usage}", 2)


def atomic_write_json(path: str, obj: Any, indent: int | None = None) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def save_active_config(cfg: dict[str, Any]) -> None:
    atomic_write_json(active_config_path(), cfg, indent=1)


def read_links() -> dict[str, dict[str, Any]]:
    """`ip -j -s link` of the current network namespace, by name. (Under nsenter --net, /sys
    still shows the host's interfaces, so sysfs cannot be used here.)"""
    try:
        proc = subprocess.run(["ip", "-j", "-s", "link", "show"], capture_output=True, text=True,
                              timeout=10)
        return {ln["ifname"]: ln for ln in json.loads(proc.stdout or "[]")}
    except (OSError, ValueError, subprocess.SubprocessError):
        return {}


def port_stats(ports: list[str] | None = None,
               links: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Per-port link state and counters."""
    if ports is None:
        ports = env("NF_PORTS", "lan wan").split()
    if links is None:
        links = read_links()
    out: dict[str, Any] = {}
    for p in ports:
        ln = links.get(p)
        if ln is None:
            out[p] = {"present": False}
            continue
        st = ln.get("stats64", {})
        rx, tx = st.get("rx", {}), st.get("tx", {})
        out[p] = {
            "present": True,
            "up": "UP" in ln.get("flags", []),
            "oper": ln.get("operstate"),
            "rx_packets": rx.get("packets"), "rx_bytes": rx.get("bytes"),
            "rx_dropped": rx.get("dropped"),
            "tx_packets": tx.get("packets"), "tx_bytes": tx.get("bytes"),
            "tx_dropped": tx.get("dropped"),
        }
    return out


def forwarding(links: dict[str, dict[str, Any]] | None = None) -> bool:
    """True when br0 exists and is administratively up (the NF forwards traffic)."""
    if links is None:
        links = read_links()
    return "UP" in links.get("br0", {}).get("flags", [])


def notify(ntype: str, severity: str, source: str, detail: dict[str, Any]) -> str | None:
    """Queue a notification: write to $NF_NOTIFY_DIR/tmp, then rename into new/."""
    qdir = os.environ.get("NF_NOTIFY_DIR")
    if not qdir:
        return None
    ts = time.time()
    doc = {
        "nf_id": os.environ.get("NF_ID", ""),
        "nf": os.environ.get("NF_NAME", ""),
        "owner": os.environ.get("NF_OWNER", ""),
        "node": os.environ.get("NF_NODE", ""),
        "type": ntype,
        "severity": severity,
        "source": source,
        "detail": detail,
        "ts": ts,
    }
    name = f"{int(ts * 1e6)}-{os.getpid()}-{os.environ.get('NF_ID', 'nf')}-{ntype}.json"
    tmp = os.path.join(qdir, "tmp", name)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f)
        os.replace(tmp, os.path.join(qdir, "new", name))
    except OSError as e:
        print(f"warning: cannot queue notification: {e}", file=sys.stderr)
        return None
    return name


def state_doc(nf: str, config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A flavour-independent state document: {"format", "nf", "config", **extra}."""
    doc: dict[str, Any] = {"format": STATE_FORMAT, "nf": nf, "config": config}
    doc.update(extra)
    return doc


def write_state_doc(out: str, nf: str, config: dict[str, Any], **extra: Any) -> None:
    """Export: the state document, written atomically to `out`."""
    atomic_write_json(out, state_doc(nf, config, **extra))


def read_state_doc(path: str, nf: str) -> dict[str, Any]:
    """Import: the state document at `path`, checked to be this NF's, with a config object.
    Dies otherwise."""
    doc: object = load_json(path)
    if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
        die(f"{path}: not a {STATE_FORMAT} document")
    if doc.get("nf") != nf:
        die(f"{path}: state of NF {doc.get('nf')!r}, expected {nf!r}")
    if not isinstance(doc.get("config"), dict):
        die(f"{path}: state document has no config object")
    return doc


# ---- nftables texts ------------------------------------------------------------------------------
def nft_replace(*tables: str) -> list[str]:
    """The first lines of an `nft -f` file that replaces `tables` ("<family> <name>") in
    one transaction: each declared (so its delete cannot fail on a first load), then
    deleted; the file's later blocks define them again."""
    return [line for t in tables for line in (f"table {t}", f"delete table {t}")]


def nft_bridge_prerouting(table: str, rules: list[str], *more: str) -> list[str]:
    """`table bridge <table>` with its prerouting chain holding `rules`, then `more` lines
    (further chains). Priority -300 and the bridge family: with br_netfilter the inet hooks
    see iifname "br0" for a bridged frame, never its port, so a mark set here is how they
    tell where it entered."""
    return [
        f"table bridge {table} {{",
        "\tchain prerouting {",
        "\t\ttype filter hook prerouting priority -300; policy accept;",
        *rules,
        "\t}",
        *more,
        "}",
    ]


def nft_port_marks(lan: str, wan: str, mark_out: int, mark_in: int) -> list[str]:
    """Prerouting rules that mark each frame by its ingress port: `lan`'s with `mark_out`
    (user -> network), `wan`'s with `mark_in`."""
    return [f'\t\tiifname "{lan}" meta mark set {mark_out:#x}',
            f'\t\tiifname "{wan}" meta mark set {mark_in:#x}']
