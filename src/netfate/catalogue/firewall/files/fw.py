"""Firewall helper: builds and loads the nftables ruleset, reports counters, moves state.

Usage: fw.py apply | check CONFIG | render CONFIG OUT | status | flush | export OUT | import IN
Runs inside the NF's network namespace with "$NF_PYTHON" (stdlib only).

Direction: with br_netfilter the inet forward hook sees iifname/oifname "br0" for bridged
packets, never the bridge ports. A bridge-family prerouting chain therefore marks every packet
by its ingress port (lan -> 0x1 "out", wan -> 0x2 "in") and the inet forward chain dispatches
on that mark.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import tempfile
from typing import TYPE_CHECKING, Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if TYPE_CHECKING:  # checked in the source tree; in the bundle it is packed next to this file
    from netfate.catalogue._shared import nfcommon as nf
else:
    import nfcommon as nf
die = nf.die

TABLE = "fate_fw"
DIR_TABLE = "fate_fw_dir"
MARK_OUT = 0x1  # entered on lan: user -> internet
MARK_IN = 0x2  # entered on wan: internet -> user
MAX_RULES = 256
LAN, WAN = "lan", "wan"


def _net(value: Any, where: str) -> str:
    if not isinstance(value, str):
        die(f"{where}: must be an IPv4 address or CIDR string")
    try:
        return str(ipaddress.IPv4Network(value, strict=False))
    except ValueError as e:
        die(f"{where}: {e}")


def normalise(cfg: dict[str, Any]) -> dict[str, Any]:
    """Validate (again, independently of the platform) and fill defaults."""
    allowed = {"default_out", "default_in", "allow_dhcp", "rules"}
    extra = set(cfg) - allowed
    if extra:
        die(f"unknown config keys: {sorted(extra)}")
    out: dict[str, Any] = {
        "default_out": cfg.get("default_out", "allow"),
        "default_in": cfg.get("default_in", "deny"),
        "allow_dhcp": cfg.get("allow_dhcp", True),
        "rules": [],
    }
    for k in ("default_out", "default_in"):
        if out[k] not in ("allow", "deny"):
            die(f"{k}: must be allow or deny")
    if not isinstance(out["allow_dhcp"], bool):
        die("allow_dhcp: must be a boolean")
    rules = cfg.get("rules", [])
    if not isinstance(rules, list) or len(rules) > MAX_RULES:
        die(f"rules: must be a list of at most {MAX_RULES} rules")
    for i, r in enumerate(rules):
        where = f"rules[{i}]"
        if not isinstance(r, dict):
            die(f"{where}: must be an object")
        bad = set(r) - {"action", "direction", "proto", "dport", "src", "dst"}
        if bad:
            die(f"{where}: unknown keys {sorted(bad)}")
        nr: dict[str, Any] = {
            "action": r.get("action"),
            "direction": r.get("direction", "out"),
            "proto": r.get("proto", "any"),
        }
        if nr["action"] not in ("allow", "deny"):
            die(f"{where}.action: must be allow or deny")
        if nr["direction"] not in ("out", "in"):
            die(f"{where}.direction: must be out or in")
        if nr["proto"] not in ("tcp", "udp", "icmp", "any"):
            die(f"{where}.proto: must be tcp, udp, icmp or any")
        if "dport" in r:
            p = r["dport"]
            if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 65535:
                die(f"{where}.dport: must be an integer 1-65535")
            if nr["proto"] == "icmp":
                die(f"{where}: dport cannot be used with proto icmp")
            nr["dport"] = p
        for k in ("src", "dst"):
            if k in r:
                nr[k] = _net(r[k], f"{where}.{k}")
        out["rules"].append(nr)
    return out


def rule_line(i: int, r: dict[str, Any]) -> str:
    """One normalised rule as an nft rule line, counted and commented "rule <i>"."""
    parts: list[str] = []
    v4_only = "src" in r or "dst" in r
    if "src" in r:
        parts.append(f"ip saddr {r['src']}")
    if "dst" in r:
        parts.append(f"ip daddr {r['dst']}")
    proto = r["proto"]
    if proto in ("tcp", "udp"):
        parts.append(f"meta l4proto {proto}")
    elif proto == "icmp":
        parts.append("meta l4proto icmp" if v4_only else "meta l4proto { icmp, ipv6-icmp }")
    elif "dport" in r:
        parts.append("meta l4proto { tcp, udp }")
    if "dport" in r:
        parts.append(f"th dport {r['dport']}")
    verdict = "accept" if r["action"] == "allow" else "drop"
    parts.append(f'counter {verdict} comment "rule {i}"')
    return "\t\t" + " ".join(parts)


def build_ruleset(cfg: dict[str, Any], ports: tuple[str, str] | None = None) -> str:
    """The whole ruleset for `nft -f` (both tables replaced atomically), for the NF's ports
    (lan, wan; default NF_PORTS). Dies on an invalid config."""
    cfg = normalise(cfg)
    lan, wan = ports or nf.two_ports("firewall")
    v_out = "accept" if cfg["default_out"] == "allow" else "drop"
    v_in = "accept" if cfg["default_in"] == "allow" else "drop"
    outbound = [rule_line(i, r) for i, r in enumerate(cfg["rules"]) if r["direction"] == "out"]
    inbound = [rule_line(i, r) for i, r in enumerate(cfg["rules"]) if r["direction"] == "in"]
    dhcp = []
    if cfg["allow_dhcp"]:
        # DHCPv4 replies towards the lan are never "established" for conntrack
        # (the request went to the broadcast address).
        dhcp.append('\t\tudp sport 67 udp dport 68 counter accept comment "dhcp"')
    lines = [
        f"table bridge {DIR_TABLE}",
        f"delete table bridge {DIR_TABLE}",
        f"table inet {TABLE}",
        f"delete table inet {TABLE}",
        f"table bridge {DIR_TABLE} {{",
        "\tchain prerouting {",
        "\t\ttype filter hook prerouting priority -300; policy accept;",
        f'\t\tiifname "{lan}" meta mark set {MARK_OUT:#x}',
        f'\t\tiifname "{wan}" meta mark set {MARK_IN:#x}',
        "\t}",
        "}",
        f"table inet {TABLE} {{",
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter; policy accept;",
        '\t\tct state established,related counter accept comment "established"',
        '\t\tct state invalid counter drop comment "invalid"',
        "\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit,"
        ' nd-router-advert } counter accept comment "ndp"',
        f"\t\tmeta mark {MARK_OUT:#x} jump outbound",
        f"\t\tmeta mark {MARK_IN:#x} jump inbound",
        "\t}",
        "\tchain outbound {",
        *outbound,
        f'\t\tcounter {v_out} comment "default_out"',
        "\t}",
        "\tchain inbound {",
        *dhcp,
        *inbound,
        f'\t\tcounter {v_in} comment "default_in"',
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _nft(args: list[str], what: str) -> str:
    proc = subprocess.run(["nft", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        die(f"{what} failed: {proc.stderr.strip()}")
    return proc.stdout


def ruleset_path() -> str:
    """The compiled ruleset that start loads (fwlib.sh RULESET)."""
    return os.path.join(nf.env("NF_STATE_DIR"), "ruleset.nft")


def write_ruleset(cfg: dict[str, Any], path: str) -> None:
    text = build_ruleset(cfg)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def load_ruleset(cfg: dict[str, Any]) -> None:
    path = ruleset_path()
    write_ruleset(cfg, path)
    _nft(["-f", path], "loading the ruleset")


def cmd_apply() -> None:
    load_ruleset(nf.load_active_config())


def cmd_check(path: str) -> None:
    sys.stdout.write(build_ruleset(nf.load_config_file(path)))


def cmd_render(path: str, out: str) -> None:
    """Compile a config into an nft ruleset file, without loading it."""
    write_ruleset(nf.load_config_file(path), out)


def cmd_flush() -> None:
    for fam, tab in (("inet", TABLE), ("bridge", DIR_TABLE)):
        subprocess.run(["nft", "delete", "table", fam, tab], capture_output=True, check=False)


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def rule_counters(listing: dict[str, Any]) -> dict[str, dict[str, int]]:
    """{comment: {packets, bytes}} of the counted, commented rules in `nft -j list table`."""
    counters: dict[str, dict[str, int]] = {}
    for item in listing.get("nftables", []):
        rule = item.get("rule")
        if not rule or "comment" not in rule:
            continue
        for e in rule.get("expr", []):
            if "counter" in e:
                c = e["counter"]
                counters[rule["comment"]] = {"packets": c["packets"], "bytes": c["bytes"]}
    return counters


def cmd_status() -> None:
    try:
        cfg = normalise(nf.load_active_config())
    except SystemExit:
        cfg = {"default_out": None, "default_in": None, "rules": []}
    counters: dict[str, dict[str, int]] = {}
    proc = subprocess.run(["nft", "-j", "list", "table", "inet", TABLE], capture_output=True,
                          text=True, check=False)
    loaded = proc.returncode == 0
    if loaded:
        counters = rule_counters(json.loads(proc.stdout))
    zero = {"packets": 0, "bytes": 0}
    links = nf.read_links()
    rules = []
    for i, r in enumerate(cfg["rules"]):
        c = counters.get(f"rule {i}", zero)
        rules.append({"index": i, "action": r["action"], "direction": r["direction"], **c})
    status = {
        "nf": "firewall",
        "running": loaded and nf.forwarding(links),
        "paused": nf.paused(),
        "ruleset_loaded": loaded,
        "rules": rules,
        "default_out": {"policy": cfg["default_out"], **counters.get("default_out", zero)},
        "default_in": {"policy": cfg["default_in"], **counters.get("default_in", zero)},
        "established": counters.get("established", zero),
        "invalid": counters.get("invalid", zero),
        "dhcp": counters.get("dhcp", zero),
        "conntrack_entries": _read_int("/proc/sys/net/netfilter/nf_conntrack_count"),
        "ports": nf.port_stats(links=links),
    }
    nf.print_json(status)


def saved_entries(listing: str) -> list[str]:
    """The entries of `conntrack -L -o save` output (its "-A ..." lines)."""
    return [ln for ln in listing.splitlines() if ln.startswith("-A ")]


def cmd_export(out: str) -> None:
    cfg = nf.load_active_config()
    proc = subprocess.run(["conntrack", "-L", "-o", "save"], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        die(f"conntrack -L failed: {proc.stderr.strip()}")
    nf.write_state_doc(out, "firewall", cfg, conntrack=saved_entries(proc.stdout))


def check_entries(entries: object) -> list[str]:
    """The conntrack entries of a state document: a list of single "-A ..." lines, or die."""
    if not isinstance(entries, list):
        die("state document: conntrack must be a list")
    for ln in entries:
        if not isinstance(ln, str) or not ln.startswith("-A ") or "\n" in ln:
            die("state document: malformed conntrack entry")
    return entries


def _restore_conntrack(entries: list[str]) -> tuple[int, int]:
    """Load saved entries; returns (restored, skipped). Entries that already exist (a flow
    picked up again between start and import) are skipped, not fatal."""
    if not entries:
        return 0, 0
    with tempfile.NamedTemporaryFile("w", dir=nf.env("NF_RUN_DIR"), suffix=".ct",
                                     delete=False) as f:
        f.write("\n".join(entries) + "\n")
        path = f.name
    try:
        proc = subprocess.run(["conntrack", "-R", path], capture_output=True, text=True,
                              check=False)
        if proc.returncode == 0:
            return len(entries), 0
        # Fall back to one entry at a time so one existing entry does not lose the rest.
        restored = skipped = 0
        for ln in entries:
            with open(path, "w") as f:
                f.write(ln + "\n")
            p = subprocess.run(["conntrack", "-R", path], capture_output=True, text=True,
                               check=False)
            if p.returncode == 0:
                restored += 1
            else:
                skipped += 1
        return restored, skipped
    finally:
        os.unlink(path)


def cmd_import(path: str) -> None:
    doc = nf.read_state_doc(path, "firewall")
    cfg = doc["config"]
    build_ruleset(cfg)  # validate before touching anything
    nf.save_active_config(cfg)
    load_ruleset(cfg)
    restored, skipped = _restore_conntrack(check_entries(doc.get("conntrack", [])))
    print(f"firewall: imported config ({len(cfg.get('rules', []))} rules), "
          f"{restored} conntrack entries restored, {skipped} skipped", file=sys.stderr)


if __name__ == "__main__":
    nf.main(sys.argv[1:], globals(), __doc__)
