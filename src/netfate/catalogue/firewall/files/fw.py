"""Firewall helper: builds and loads the nftables ruleset, reports counters, moves state.

Usage: fw.py apply | check CONFIG | render CONFIG OUT | status | flush | export OUT | import IN
Runs inside the NF's network namespace with "$NF_PYTHON" (stdlib only).

Direction: with br_netfilter the inet forward hook sees iifname/oifname "br0" for bridged
packets, never the bridge ports. A bridge-family prerouting chain therefore marks every packet
by its ingress port (lan -> 0x1 "out", wan -> 0x2 "in") and the inet forward chain dispatches
on that mark.

Tenants (a shared instance, NNF paper IV.E): with a config `{"tenants": [{"user", "vlan",
...that user's own config}]}` the switch tags each tenant's traffic with its VLAN on both
ports. The prerouting chain then marks by port and VLAN (vlan << 4 | direction), each
tenant's rules live in chains of their own, and traffic of no tenant (untagged, an unknown
VLAN) is dropped. br_netfilter hands tagged frames to the inet hooks because the driver sets
bridge-nf-filter-vlan-tagged in the NF's namespace; the bridge keeps each frame's tag, so
a tenant's traffic leaves with the tag it came with.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if TYPE_CHECKING:  # checked in the source tree; in the bundle it is packed next to this file
    from netfate.catalogue._shared import ctstate as st
    from netfate.catalogue._shared import nfcommon as nf
else:
    import ctstate as st
    import nfcommon as nf
die = nf.die

TABLE = "fate_fw"
DIR_TABLE = "fate_fw_dir"
MARK_OUT = 0x1  # entered on lan: user -> internet
MARK_IN = 0x2  # entered on wan: internet -> user
MAX_RULES = 256
LAN, WAN = "lan", "wan"


MAX_TENANTS = 256


def normalise(cfg: dict[str, Any]) -> dict[str, Any]:
    """Validate (again, independently of the platform) and fill defaults. A tenants config
    becomes {"tenants": [each tenant's own config normalised, with "user" and "vlan"]}."""
    if "tenants" in cfg:
        return {"tenants": normalise_tenants(cfg)}
    return normalise_one(cfg)


def normalise_tenants(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    # (the top-level policy, defaults filled in by the platform, is not used here)
    extra = set(cfg) - {"tenants", "default_out", "default_in", "allow_dhcp", "rules"}
    if extra:
        die(f"unknown config keys: {sorted(extra)}")
    ts = cfg["tenants"]
    if not isinstance(ts, list) or len(ts) > MAX_TENANTS:
        die(f"tenants: must be a list of at most {MAX_TENANTS} tenants")
    out: list[dict[str, Any]] = []
    seen: set[int] = set()
    for i, t in enumerate(ts):
        if not isinstance(t, dict):
            die(f"tenants[{i}]: must be an object")
        vlan, user = t.get("vlan"), t.get("user")
        if isinstance(vlan, bool) or not isinstance(vlan, int) or not 1 <= vlan <= 4094:
            die(f"tenants[{i}].vlan: must be an integer 1-4094")
        if vlan in seen:
            die(f"tenants[{i}].vlan: {vlan} is another tenant's")
        seen.add(vlan)
        if not isinstance(user, str) or not user or len(user) > 128:
            die(f"tenants[{i}].user: must be a name")
        own = normalise_one({k: v for k, v in t.items() if k not in ("vlan", "user")})
        out.append({**own, "user": user, "vlan": vlan})
    return out


def normalise_one(cfg: dict[str, Any]) -> dict[str, Any]:
    """One policy (the NF's own, or one tenant's), validated and with defaults filled."""
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
                nr[k] = nf.cidr(r[k], f"{where}.{k}")
        out["rules"].append(nr)
    return out


def rule_line(i: int, r: dict[str, Any], prefix: str = "") -> str:
    """One normalised rule as an nft rule line, counted and commented "<prefix>rule <i>"."""
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
    parts.append(f'counter {verdict} comment "{prefix}rule {i}"')
    return "\t\t" + " ".join(parts)


def build_ruleset(cfg: dict[str, Any], ports: tuple[str, str] | None = None) -> str:
    """The whole ruleset for `nft -f` (both tables replaced atomically), for the NF's ports
    (lan, wan; default NF_PORTS). Dies on an invalid config."""
    cfg = normalise(cfg)
    lan, wan = ports or nf.two_ports("firewall")
    if "tenants" in cfg:
        return tenants_ruleset(cfg["tenants"], lan, wan)
    lines = [
        *nf.nft_replace(f"bridge {DIR_TABLE}", f"inet {TABLE}"),
        *nf.nft_bridge_prerouting(DIR_TABLE, nf.nft_port_marks(lan, wan, MARK_OUT, MARK_IN)),
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
        *_policy_chains(cfg, "outbound", "inbound", ""),
        "}",
    ]
    return "\n".join(lines) + "\n"


def _policy_chains(cfg: dict[str, Any], out_chain: str, in_chain: str, prefix: str
                   ) -> list[str]:
    """The outbound and inbound chains of one normalised policy, each rule's and default's
    comment starting with `prefix`."""
    v_out = "accept" if cfg["default_out"] == "allow" else "drop"
    v_in = "accept" if cfg["default_in"] == "allow" else "drop"
    # DHCPv4 replies towards the lan are never "established" for conntrack (the request
    # went to the broadcast address).
    dhcp = ([f'\t\tudp sport 67 udp dport 68 counter accept comment "{prefix}dhcp"']
            if cfg["allow_dhcp"] else [])
    return [
        f"\tchain {out_chain} {{",
        *(rule_line(i, r, prefix) for i, r in enumerate(cfg["rules"])
          if r["direction"] == "out"),
        f'\t\tcounter {v_out} comment "{prefix}default_out"',
        "\t}",
        f"\tchain {in_chain} {{",
        *dhcp,
        *(rule_line(i, r, prefix) for i, r in enumerate(cfg["rules"])
          if r["direction"] == "in"),
        f'\t\tcounter {v_in} comment "{prefix}default_in"',
        "\t}",
    ]


def tenant_mark(vlan: int, direction: int) -> int:
    return vlan << 4 | direction


def tenants_ruleset(tenants: list[dict[str, Any]], lan: str, wan: str) -> str:
    """The ruleset of a shared instance: each tenant's policy applies to the traffic tagged
    with its VLAN (marked at bridge prerouting by port and VLAN), in chains of its own; what
    carries no tenant's VLAN is dropped."""
    marks, dispatch, chains = [], [], []
    for t in tenants:
        v = t["vlan"]
        m_out, m_in = tenant_mark(v, MARK_OUT), tenant_mark(v, MARK_IN)
        marks += [f'\t\tiifname "{lan}" vlan id {v} meta mark set {m_out:#x}',
                  f'\t\tiifname "{wan}" vlan id {v} meta mark set {m_in:#x}']
        dispatch += [f"\t\tmeta mark {m_out:#x} jump out_{v}",
                     f"\t\tmeta mark {m_in:#x} jump in_{v}"]
        chains += _policy_chains(t, f"out_{v}", f"in_{v}", f"vlan {v} ")
    lines = [
        *nf.nft_replace(f"bridge {DIR_TABLE}", f"inet {TABLE}"),
        *nf.nft_bridge_prerouting(
            DIR_TABLE, ["\t\tmeta mark set 0x0", *marks],
            "\tchain forward {",
            "\t\ttype filter hook forward priority filter; policy accept;",
            '\t\tmeta mark 0x0 counter drop comment "no tenant"',
            "\t}"),
        f"table inet {TABLE} {{",
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter; policy drop;",
        '\t\tct state invalid counter drop comment "invalid"',
        '\t\tmeta mark != 0x0 ct state established,related counter accept comment '
        '"established"',
        *dispatch,
        '\t\tcounter drop comment "no tenant"',
        "\t}",
        *chains,
        "}",
    ]
    return "\n".join(lines) + "\n"


def write_ruleset(cfg: dict[str, Any], path: str) -> None:
    st.write_text(path, build_ruleset(cfg))


def load_ruleset(cfg: dict[str, Any]) -> None:
    write_ruleset(cfg, st.ruleset_path())
    st.nft_load(st.ruleset_path())


def cmd_apply() -> None:
    load_ruleset(nf.load_active_config())


def cmd_check(path: str) -> None:
    sys.stdout.write(build_ruleset(nf.load_config_file(path)))


def cmd_render(path: str, out: str) -> None:
    """Compile a config into an nft ruleset file, without loading it."""
    write_ruleset(nf.load_config_file(path), out)


def cmd_flush() -> None:
    st.nft_delete([("inet", TABLE), ("bridge", DIR_TABLE)])


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def cmd_status() -> None:
    try:
        cfg = normalise(nf.load_active_config())
    except SystemExit:
        cfg = {"default_out": None, "default_in": None, "rules": []}
    tenants = [{"user": t["user"], "vlan": t["vlan"]} for t in cfg.get("tenants", [])]
    if "tenants" in cfg:  # a shared instance: each tenant's counters are in the listing
        cfg = {"default_out": None, "default_in": None, "rules": []}
    loaded, counters = st.counters("inet", TABLE)
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
        "tenants": tenants,
        "conntrack_entries": _read_int("/proc/sys/net/netfilter/nf_conntrack_count"),
        "ports": nf.port_stats(links=links),
    }
    nf.print_json(status)


def cmd_export(out: str) -> None:
    st.export_doc(out, "firewall")


def cmd_import(path: str) -> None:
    st.import_doc(path, "firewall", build_ruleset)


if __name__ == "__main__":
    nf.main(sys.argv[1:], globals(), __doc__)
