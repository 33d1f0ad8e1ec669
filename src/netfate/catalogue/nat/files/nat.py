"""NAT helper: source NAT (masquerade behind one address) in the wire, with its state.

Usage: nat.py check CONFIG | render CONFIG OUT | l3 | status [ARPD_PID] | export OUT | import IN
Runs inside the NF's network namespace with "$NF_PYTHON" (stdlib only).

The NNF paper's split service puts the NAT in the DC (the VPN on the CPE): the user's
addresses leave the operator's network as one address. New connections entering on lan from
an `internal` source are translated to `address` (TCP/UDP source ports from port_min..port_max);
conntrack keeps each binding and un-NATs the replies. br0 owns the address (see l3bump).
State: the config and the conntrack entries, NAT bindings included, so a NAT that moves keeps
its connections' outside ports.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from typing import TYPE_CHECKING, Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if TYPE_CHECKING:  # checked in the source tree; in the bundle it is packed next to this file
    from netfate.catalogue._shared import ctstate as st
    from netfate.catalogue._shared import l3bump as l3
    from netfate.catalogue._shared import nfcommon as nf
else:
    import ctstate as st
    import l3bump as l3
    import nfcommon as nf
die = nf.die

TABLE = "fate_nat"
DIR_TABLE = "fate_nat_dir"
MAX_NETS = 64
KEYS = {"address", "gateway", "internal", "exclude", "port_min", "port_max", "block_inbound"}


def _nets(cfg: dict[str, Any], key: str, default: list[str], lo: int) -> list[str]:
    v = cfg.get(key, default)
    if not isinstance(v, list) or not lo <= len(v) <= MAX_NETS:
        die(f"{key}: must be a list of {lo}-{MAX_NETS} IPv4 CIDRs")
    return [l3.cidr(n, f"{key}[{i}]") for i, n in enumerate(v)]


def normalise(cfg: dict[str, Any]) -> dict[str, Any]:
    """Validate (again, independently of the platform) and fill defaults. Dies naming the
    first thing wrong."""
    extra = set(cfg) - KEYS
    if extra:
        die(f"unknown config keys: {sorted(extra)}")
    if "address" not in cfg:
        die("address: required (the outside address, e.g. 10.90.254.1/16)")
    iface = l3.interface(cfg["address"], "address")
    out: dict[str, Any] = {
        "address": str(iface),
        "internal": _nets(cfg, "internal", ["0.0.0.0/0"], 1),
        "exclude": _nets(cfg, "exclude", [], 0),
        "port_min": nf.int_in(cfg, "port_min", 1024, 1024, 65535),
        "port_max": nf.int_in(cfg, "port_max", 65535, 1024, 65535),
        "block_inbound": cfg.get("block_inbound", True),
    }
    if cfg.get("gateway") is not None:
        out["gateway"] = l3.gateway_in(cfg["gateway"], iface, "gateway")
    if out["port_min"] > out["port_max"]:
        die(f"port_min ({out['port_min']}) is above port_max ({out['port_max']})")
    if not isinstance(out["block_inbound"], bool):
        die("block_inbound: must be a boolean")
    if any(iface.ip in ipaddress.IPv4Network(n) for n in out["internal"]
           if ipaddress.IPv4Network(n).prefixlen > 0):
        die(f"address: {iface.ip} is inside an internal network; the outside address must "
            "not be one of the translated sources")
    return out


def _set(nets: list[str]) -> str:
    return "{ " + ", ".join(nets) + " }"


def build_ruleset(cfg: dict[str, Any], ports: tuple[str, str] | None = None) -> str:
    """The NAT's whole ruleset for `nft -f` (its tables replaced atomically). Dies on an
    invalid config."""
    cfg = normalise(cfg)
    lan, wan = ports or nf.two_ports("nat")
    ip = cfg["address"].split("/")[0]
    match = f"meta mark {l3.MARK_OUT:#x} ip saddr {_set(cfg['internal'])}"
    if cfg["exclude"]:
        match += f" ip daddr != {_set(cfg['exclude'])}"
    prange = f"{cfg['port_min']}-{cfg['port_max']}"
    forward = [
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter; policy accept;",
        '\t\tct state established,related counter accept comment "established"',
    ]
    if cfg["block_inbound"]:
        forward += [
            # DHCPv4 replies go to the broadcast address or the offered one: never NATed
            f"\t\tmeta mark {l3.MARK_IN:#x} udp sport 67 udp dport 68 accept",
            f"\t\tmeta mark {l3.MARK_IN:#x} ct state new ip daddr {_set(cfg['internal'])}"
            ' counter drop comment "inbound"',
        ]
    forward.append("\t}")
    lines = [
        *l3.bridge_marks(DIR_TABLE, lan, wan),
        f"table ip {TABLE}",
        f"delete table ip {TABLE}",
        f"table ip {TABLE} {{",
        "\tchain postrouting {",
        "\t\ttype nat hook postrouting priority srcnat; policy accept;",
        f"\t\t{match} meta l4proto {{ tcp, udp }} counter snat to {ip}:{prange}"
        ' comment "snat tcp/udp"',
        f'\t\t{match} counter snat to {ip} comment "snat other"',
        "\t}",
        *forward,
        # Connections to the NAT's own address that no binding claims: nothing listens here.
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy drop;",
        "\t\tct state established,related accept",
        "\t\ticmp type echo-request limit rate 10/second accept",
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def onlink(cfg: dict[str, Any]) -> list[str]:
    """Networks the de-NATted replies go to: the internal ones, on br0's link."""
    return list(normalise(cfg)["internal"])


def cmd_check(path: str) -> None:
    sys.stdout.write(build_ruleset(nf.load_config_file(path)))


def cmd_render(path: str, out: str) -> None:
    st.write_text(out, build_ruleset(nf.load_config_file(path)))


def cmd_l3() -> None:
    """br0's address and routes from the active config; nothing while br0 is down (routes
    need it up: start runs this again)."""
    cfg = normalise(nf.load_active_config())
    if not nf.forwarding():
        return
    l3.set_l3(cfg["address"], None, onlink(cfg))


def nat_entries(entries: list[str]) -> int:
    """How many saved conntrack entries carry a source-NAT binding (-n, --src-nat)."""
    return sum(1 for e in entries if " -n " in f" {e} " or "--src-nat" in e)


def cmd_status(daemon_pid: str = "") -> None:
    try:
        cfg: dict[str, Any] = normalise(nf.load_active_config())
    except SystemExit:
        cfg = {}
    loaded, c = st.counters("ip", TABLE)
    zero = {"packets": 0, "bytes": 0}
    try:
        entries = st.export_conntrack()
    except SystemExit:
        entries = []
    links = nf.read_links()
    tcpudp, other = c.get("snat tcp/udp", zero), c.get("snat other", zero)
    nf.print_json({
        "nf": "nat",
        "running": loaded and nf.forwarding(links),
        "paused": nf.paused(),
        "ruleset_loaded": loaded,
        "address": cfg.get("address"),
        "addresses": l3.addresses(),
        # the NAT chain sees the first packet of each connection only
        "translated_connections": tcpudp["packets"] + other["packets"],
        "translated": {"tcp_udp": tcpudp, "other": other},
        "inbound_dropped": c.get("inbound", zero),
        "established": c.get("established", zero),
        "conntrack_entries": len(entries),
        "nat_entries": nat_entries(entries),
        "config": cfg,
        "arpd_running": bool(daemon_pid),
        "ports": nf.port_stats(links=links),
    })


def cmd_export(out: str) -> None:
    st.export_doc(out, "nat")


def cmd_import(path: str) -> None:
    st.import_doc(path, "nat", build_ruleset, cmd_l3)


if __name__ == "__main__":
    nf.main(sys.argv[1:], globals(), __doc__)
