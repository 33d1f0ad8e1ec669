"""Load-balancer helper: spreads new connections to a service address over backends.

Usage: lb.py check CONFIG | render CONFIG OUT | l3 | status | export OUT | import IN
Runs inside the NF's network namespace with "$NF_PYTHON" (stdlib only).

NetFATE Table II's load balancer, in the user's chain. A new connection entering on lan to a
service's vip:port is DNATed to one backend, picked by nft's `numgen inc` (round-robin),
`numgen random` or `jhash ip saddr` (source-hash), over weight-sized slots. conntrack keeps
each connection on the backend it got (only a new connection is picked) and rewrites the
replies' source back to the VIP, so the client never sees a backend's address. An update
changes what new connections get; connections already placed stay where they are.
State: the config and the conntrack entries (DNAT bindings), so a moved balancer keeps every
connection on its backend.
"""

from __future__ import annotations

import ipaddress
import itertools
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

TABLE = "fate_lb"
DIR_TABLE = "fate_lb_dir"
METHODS = ("round-robin", "random", "source-hash")
MAX_SERVICES, MAX_BACKENDS = 16, 32
HASH_SEED = 0x4E46  # fixed, so source-hash gives a client the same backend after a move


def _backend(b: Any, port: int, where: str) -> dict[str, Any]:
    if not isinstance(b, dict):
        die(f"{where}: must be an object")
    bad = set(b) - {"address", "port", "weight"}
    if bad:
        die(f"{where}: unknown keys {sorted(bad)}")
    if "address" not in b:
        die(f"{where}.address: required")
    return {"address": l3.unicast(b["address"], f"{where}.address"),
            "port": nf.int_in(b, "port", port, 1, 65535, where),
            "weight": nf.int_in(b, "weight", 1, 1, 100, where)}


def _service(s: Any, i: int) -> dict[str, Any]:
    where = f"services[{i}]"
    if not isinstance(s, dict):
        die(f"{where}: must be an object")
    bad = set(s) - {"name", "vip", "port", "proto", "method", "backends"}
    if bad:
        die(f"{where}: unknown keys {sorted(bad)}")
    for k in ("vip", "port", "backends"):
        if k not in s:
            die(f"{where}.{k}: required")
    name = s.get("name", f"service{i}")
    if not isinstance(name, str) or not name or len(name) > 32 or not all(
            c.isascii() and (c.isalnum() or c in "_.-") for c in name):
        die(f"{where}.name: 1-32 letters, digits, '_', '.' or '-'")
    port = nf.int_in(s, "port", 0, 1, 65535, where)
    out: dict[str, Any] = {
        "name": name, "vip": l3.unicast(s["vip"], f"{where}.vip"), "port": port,
        "proto": s.get("proto", "tcp"), "method": s.get("method", "round-robin"),
    }
    if out["proto"] not in ("tcp", "udp"):
        die(f"{where}.proto: must be tcp or udp")
    if out["method"] not in METHODS:
        die(f"{where}.method: must be one of {', '.join(METHODS)}")
    bs = s["backends"]
    if not isinstance(bs, list) or not 1 <= len(bs) <= MAX_BACKENDS:
        die(f"{where}.backends: must be a list of 1-{MAX_BACKENDS} backends")
    out["backends"] = [_backend(b, port, f"{where}.backends[{j}]") for j, b in enumerate(bs)]
    seen = [(b["address"], b["port"]) for b in out["backends"]]
    if len(set(seen)) != len(seen):
        die(f"{where}.backends: the same address and port twice")
    if any(b["address"] == out["vip"] for b in out["backends"]):
        die(f"{where}.backends: a backend cannot be the service address itself")
    return out


def normalise(cfg: dict[str, Any]) -> dict[str, Any]:
    """Validate (again, independently of the platform) and fill defaults. Dies naming the
    first thing wrong."""
    extra = set(cfg) - {"address", "gateway", "services"}
    if extra:
        die(f"unknown config keys: {sorted(extra)}")
    if "address" not in cfg:
        die("address: required (br0's address on the user's network, e.g. 10.90.253.1/16)")
    iface = l3.interface(cfg["address"], "address")
    out: dict[str, Any] = {"address": str(iface)}
    if cfg.get("gateway") is not None:
        out["gateway"] = l3.gateway_in(cfg["gateway"], iface, "gateway")
    svcs = cfg.get("services")
    if not isinstance(svcs, list) or not 1 <= len(svcs) <= MAX_SERVICES:
        die(f"services: must be a list of 1-{MAX_SERVICES} services")
    out["services"] = [_service(s, i) for i, s in enumerate(svcs)]
    keys = [(s["vip"], s["port"], s["proto"]) for s in out["services"]]
    if len(set(keys)) != len(keys):
        die("services: two services have the same vip, port and proto")
    names = [s["name"] for s in out["services"]]
    if len(set(names)) != len(names):
        die("services: two services have the same name")
    for s in out["services"]:
        for b in s["backends"]:
            addr = ipaddress.IPv4Address(b["address"])
            if addr not in iface.network and "gateway" not in out:
                die(f"services: backend {addr} of {s['name']} is outside {iface.network}; "
                    "set gateway to reach it")
            if addr == iface.ip:
                die(f"services: backend {addr} of {s['name']} is the NF's own address")
            if addr in iface.network and iface.network.prefixlen <= 30 and addr in (
                    iface.network.network_address, iface.network.broadcast_address):
                die(f"services: backend {addr} of {s['name']} is the network or broadcast "
                    f"address of {iface.network}")
        if ipaddress.IPv4Address(s["vip"]) == iface.ip:
            die(f"services: vip {s['vip']} of {s['name']} is the NF's own address")
    return out


def slots(backends: list[dict[str, Any]]) -> tuple[int, list[tuple[int, int, dict[str, Any]]]]:
    """(modulus, [(first, last, backend)]): each backend owns `weight` consecutive slots."""
    out, at = [], 0
    for b in backends:
        out.append((at, at + b["weight"] - 1, b))
        at += b["weight"]
    return at, out


def dnat_rule(i: int, s: dict[str, Any]) -> str:
    mod, owned = slots(s["backends"])
    picker = {"round-robin": f"numgen inc mod {mod}", "random": f"numgen random mod {mod}",
              "source-hash": f"jhash ip saddr mod {mod} seed {HASH_SEED:#x}"}[s["method"]]
    entries = ", ".join(
        f"{a if a == z else f'{a}-{z}'} : {b['address']} . {b['port']}" for a, z, b in owned)
    return (f"\t\tmeta mark {l3.MARK_OUT:#x} ip daddr {s['vip']} {s['proto']} dport {s['port']}"
            f' counter dnat ip to {picker} map {{ {entries} }} comment "service {i}"')


def build_ruleset(cfg: dict[str, Any], ports: tuple[str, str] | None = None) -> str:
    """The balancer's whole ruleset for `nft -f` (its tables replaced atomically). Dies on an
    invalid config."""
    cfg = normalise(cfg)
    lan, wan = ports or nf.two_ports("load-balancer")
    count = []
    for i, s in enumerate(cfg["services"]):
        for j, b in enumerate(s["backends"]):
            # after the DNAT: a new connection to this backend that was addressed to the VIP
            count.append(
                f"\t\tct state new ct original ip daddr {s['vip']} ip daddr {b['address']}"
                f" {s['proto']} dport {b['port']} counter"
                f' comment "service {i} backend {j}"')
    lines = [
        *l3.bridge_marks(DIR_TABLE, lan, wan),
        f"table ip {TABLE}",
        f"delete table ip {TABLE}",
        f"table ip {TABLE} {{",
        "\tchain prerouting {",
        "\t\ttype nat hook prerouting priority dstnat; policy accept;",
        *[dnat_rule(i, s) for i, s in enumerate(cfg["services"])],
        "\t}",
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter; policy accept;",
        *count,
        "\t}",
        # Nothing listens on the balancer's own addresses.
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy drop;",
        "\t\tct state established,related accept",
        "\t\ticmp type echo-request limit rate 10/second accept",
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def vip_addresses(cfg: dict[str, Any]) -> tuple[str, ...]:
    """VIPs inside br0's subnet: br0 answers ARP for them (as /32), so lan hosts on that
    subnet reach them; VIPs elsewhere are reached through the hosts' own gateway."""
    net = ipaddress.IPv4Interface(cfg["address"]).network
    vips = sorted({s["vip"] for s in cfg["services"]
                   if ipaddress.IPv4Address(s["vip"]) in net})
    return tuple(f"{v}/32" for v in vips)


def cmd_check(path: str) -> None:
    sys.stdout.write(build_ruleset(nf.load_config_file(path)))


def cmd_render(path: str, out: str) -> None:
    st.write_text(out, build_ruleset(nf.load_config_file(path)))


def cmd_l3() -> None:
    """br0's address, VIPs and route from the active config; nothing while br0 is down
    (routes need it up: start runs this again)."""
    cfg = normalise(nf.load_active_config())
    if nf.forwarding():
        l3.set_l3(cfg["address"], cfg.get("gateway"), [], vip_addresses(cfg))


def _fields(entry: str) -> dict[str, str]:
    """Option -> value of one saved conntrack entry ("-A -s X -d Y ..."); flags are skipped."""
    words = entry.split()
    out: dict[str, str] = {}
    for k, v in itertools.pairwise(words):
        if k.startswith("-") and not v.startswith("-"):
            out.setdefault(k, v)
    return out


def active(entries: list[str], vip: str, port: int) -> dict[str, int]:
    """Connections to vip:port in the conntrack table, by backend address (the DNAT target,
    `-g`, or the reply source, `-r`)."""
    out: dict[str, int] = {}
    for e in entries:
        f = _fields(e)
        if f.get("-d") != vip or f.get("--dport") != str(port):
            continue
        backend = f.get("-g") or f.get("-r")
        if backend and backend != vip:
            out[backend] = out.get(backend, 0) + 1
    return out


def status_doc(cfg: dict[str, Any], counters: dict[str, dict[str, int]],
               entries: list[str]) -> list[dict[str, Any]]:
    """Per service: its connections and, per backend, new connections and active ones."""
    zero = {"packets": 0, "bytes": 0}
    out = []
    for i, s in enumerate(cfg.get("services", [])):
        act = active(entries, s["vip"], s["port"])
        out.append({
            "name": s["name"], "vip": s["vip"], "port": s["port"], "proto": s["proto"],
            "method": s["method"],
            "connections": counters.get(f"service {i}", zero)["packets"],
            "backends": [{"address": b["address"], "port": b["port"], "weight": b["weight"],
                          "connections": counters.get(f"service {i} backend {j}",
                                                      zero)["packets"],
                          "active": act.get(b["address"], 0)}
                         for j, b in enumerate(s["backends"])],
        })
    return out


def cmd_status() -> None:
    try:
        cfg: dict[str, Any] = normalise(nf.load_active_config())
    except SystemExit:
        cfg = {}
    loaded, c = st.counters("ip", TABLE)
    try:
        entries = st.export_conntrack()
    except SystemExit:
        entries = []
    links = nf.read_links()
    nf.print_json({
        "nf": "load-balancer",
        "running": loaded and nf.forwarding(links),
        "paused": nf.paused(),
        "ruleset_loaded": loaded,
        "address": cfg.get("address"),
        "addresses": l3.addresses(),
        "services": status_doc(cfg, c, entries),
        "conntrack_entries": len(entries),
        "ports": nf.port_stats(links=links),
    })


def cmd_export(out: str) -> None:
    st.export_doc(out, "load-balancer")


def cmd_import(path: str) -> None:
    st.import_doc(path, "load-balancer", build_ruleset, cmd_l3)


if __name__ == "__main__":
    nf.main(sys.argv[1:], globals(), __doc__)
