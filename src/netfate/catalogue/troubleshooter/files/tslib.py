"""The troubleshooter's pure parts: config and request validation, the argv of each tool,
and the results' formats (pcap record count, bounded output, summaries, state documents).

Stdlib only; imported by ts.py as a sibling file (packed next to it in the bundle).
"""

from __future__ import annotations

import ipaddress
import re
import struct
from typing import TYPE_CHECKING, Any

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
    if not isinstance(rid, str) or not ID_RE.fullmatch(rid):
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
    if not isinstance(flt, str) or len(flt) > 200 or not FILTER_RE.fullmatch(flt):
        die("request.filter: at most 200 characters of a tcpdump expression; no word may start "
            "with '-'")
    out["filter"] = flt
    iface = r.get("interface", BRIDGE)
    if iface not in ("lan", "wan", BRIDGE):
        die("request.interface: must be lan, wan or br0")
    out["interface"] = iface
    return out


MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def _mac(v: Any) -> str:
    """A unicast MAC for br0, lower case; dies on anything else (a group MAC would make
    every switch flood the probe's replies)."""
    if not isinstance(v, str) or not MAC_RE.fullmatch(v.lower()):
        die("mac: must be a MAC address like 02:00:00:00:00:01")
    if int(v[:2], 16) & 1:
        die(f"mac: {v} is a group (multicast) address, not a station's")
    if v.lower() == "00:00:00:00:00:00":
        die("mac: 00:00:00:00:00:00 is no station's address")
    return v.lower()


def normalise(cfg: dict[str, Any]) -> dict[str, Any]:
    bad = set(cfg) - {"address", "gateway", "mac", "beside", "request", "max_results"}
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
    if cfg.get("mac") is not None:
        out["mac"] = _mac(cfg["mac"])
    beside = cfg.get("beside", False)
    if not isinstance(beside, bool):
        die("beside: must be true or false")
    out["beside"] = beside
    if cfg.get("request") is not None:
        out["request"] = normalise_request(cfg["request"])
    return out


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
        if not isinstance(r, dict) or not isinstance(r.get("id"), str) \
                or not ID_RE.fullmatch(r["id"]):
            die("state document: result without a valid id")
        if isinstance(r.get("output"), str):
            r["output"] = truncate(r["output"])
        r["pcap"] = None
    return results
