"""The content filter's pure parts: its config, the domain decision, DNS and packet parsing,
and the forged answer for a blocked query. Stdlib only, no I/O.

Sources: DNS message format, RFC 1035 sections 4.1.1-4.1.3 (header, question, resource
record; a name pointer is 0xC000 | offset); NXDOMAIN is RCODE 3. IPv4 header and checksum,
RFC 791; UDP and its pseudo-header checksum, RFC 768; IPv6, RFC 8200 (UDP checksum mandatory).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # checked in the source tree; in the bundle it is packed next to this file
    from netfate.catalogue._shared import nfcommon as nf
else:
    import nfcommon as nf
die = nf.die

MAX_BLOCK, MAX_ALLOW, MAX_CATEGORIES, MAX_CATEGORY_SIZE = 10_000, 1_000, 32, 10_000
ANSWERS = ("nxdomain", "sinkhole")
KEYS = {"block", "allow", "categories", "custom_categories", "answer", "block_dns_tcp",
        "notify", "cooldown_s"}
QTYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
          33: "SRV", 64: "SVCB", 65: "HTTPS", 255: "ANY"}
_LABEL_OK = set("abcdefghijklmnopqrstuvwxyz0123456789-_")


def domain(value: Any, where: str) -> str:
    """A domain name, lower-cased, without a leading "*." or "." or the root's trailing dot:
    it stands for itself and every name below it. Dies naming `where` otherwise."""
    if not isinstance(value, str):
        die(f"{where}: must be a domain name string")
    d = value.strip().lower().removeprefix("*.").lstrip(".").rstrip(".")
    labels = d.split(".")
    if not d or len(d) > 253 or any(not 1 <= len(lb) <= 63 or not set(lb) <= _LABEL_OK
                                    for lb in labels):
        die(f"{where}: {value!r} is not a domain name (labels of 1-63 letters, digits, '-' "
            "or '_', at most 253 characters)")
    return d


def _domains(v: Any, where: str, most: int) -> list[str]:
    if not isinstance(v, list) or len(v) > most:
        die(f"{where}: must be a list of at most {most} domain names")
    return sorted({domain(d, f"{where}[{i}]") for i, d in enumerate(v)})


def normalise(cfg: dict[str, Any], builtin: dict[str, list[str]]) -> dict[str, Any]:
    """Validate (again, independently of the platform) and fill defaults; `builtin` are the
    bundle's categories (files/categories.json). Dies naming the first thing wrong."""
    extra = set(cfg) - KEYS
    if extra:
        die(f"unknown config keys: {sorted(extra)}")
    custom = cfg.get("custom_categories", {})
    if not isinstance(custom, dict) or len(custom) > MAX_CATEGORIES:
        die(f"custom_categories: must be an object of at most {MAX_CATEGORIES} categories")
    out: dict[str, Any] = {
        "block": _domains(cfg.get("block", []), "block", MAX_BLOCK),
        "allow": _domains(cfg.get("allow", []), "allow", MAX_ALLOW),
        "custom_categories": {},
        "answer": cfg.get("answer", "nxdomain"),
        "block_dns_tcp": cfg.get("block_dns_tcp", True),
        "notify": cfg.get("notify", False),
        "cooldown_s": nf.int_in(cfg, "cooldown_s", 60, 1, 86400),
    }
    for name, doms in sorted(custom.items()):
        if not name or len(name) > 32 or not set(name) <= _LABEL_OK:
            die(f"custom_categories: {name!r} is not a category name (1-32 of a-z 0-9 - _)")
        if name in builtin:  # which list would `categories` mean?
            die(f"custom_categories: {name!r} is a built-in category; name yours otherwise")
        out["custom_categories"][name] = _domains(doms, f"custom_categories.{name}",
                                                  MAX_CATEGORY_SIZE)
    cats = cfg.get("categories", [])
    if not isinstance(cats, list) or len(cats) > MAX_CATEGORIES:
        die(f"categories: must be a list of at most {MAX_CATEGORIES} category names")
    known = set(builtin) | set(out["custom_categories"])
    for i, c in enumerate(cats):
        if c not in known:
            die(f"categories[{i}]: unknown category {c!r}; known: {sorted(known)}")
    out["categories"] = sorted(set(cats))
    if out["answer"] not in ANSWERS:
        die(f"answer: must be one of {', '.join(ANSWERS)}")
    for k in ("block_dns_tcp", "notify"):
        if not isinstance(out[k], bool):
            die(f"{k}: must be a boolean")
    return out


@dataclass(frozen=True)
class Verdict:
    blocked: bool
    rule: str | None = None  # the list entry that matched (block or allow)
    category: str | None = None  # "blocklist", or the category's name


class Policy:
    """The decision for a name: an `allow` entry wins, then `block`, then the categories.
    An entry matches the name itself and every name below it (suffix on a label boundary)."""

    def __init__(self, cfg: dict[str, Any], builtin: dict[str, list[str]]) -> None:
        self.allow = set(cfg["allow"])
        self.block: dict[str, str] = {}
        for c in cfg["categories"]:
            lists = cfg["custom_categories"].get(c) or builtin.get(c, [])
            for d in lists:
                self.block.setdefault(domain(d, f"category {c}"), c)
        for d in cfg["block"]:
            self.block[d] = "blocklist"

    def decide(self, qname: str) -> Verdict:
        labels = qname.lower().rstrip(".").split(".")
        suffixes = [".".join(labels[i:]) for i in range(len(labels))]
        for s in suffixes:
            if s in self.allow:
                return Verdict(False, s, "allow")
        for s in suffixes:
            if s in self.block:
                return Verdict(True, s, self.block[s])
        return Verdict(False)


@dataclass(frozen=True)
class Query:
    """A DNS query inside an IP/UDP packet."""
    family: int  # socket.AF_INET or AF_INET6
    src: str
    dst: str
    sport: int
    dport: int
    dns: bytes  # the whole DNS message
    qid: int
    qname: str
    qtype: int
    question: bytes  # the question section, raw


def parse_question(msg: bytes) -> tuple[int, str, int, bytes] | None:
    """(id, name, qtype, raw question) of a standard query with exactly one question, or None
    (a response, several questions, a pointer or a malformed name)."""
    if len(msg) < 12:
        return None
    qid, flags, qd = struct.unpack_from("!HHH", msg, 0)
    if flags & 0x8000 or (flags >> 11) & 0xF != 0 or qd != 1:
        return None
    off, labels = 12, []
    while True:
        if off >= len(msg):
            return None
        n = msg[off]
        if n == 0:
            off += 1
            break
        if n > 63 or off + 1 + n > len(msg):
            return None  # a pointer (0xC0) or a bad length: no name of ours
        labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace").lower())
        off += 1 + n
    if off + 4 > len(msg) or sum(len(lb) + 1 for lb in labels) > 255:
        return None
    qtype = struct.unpack_from("!H", msg, off)[0]
    return qid, ".".join(labels), qtype, msg[12:off + 4]


def parse_packet(pkt: bytes) -> Query | None:
    """The DNS query in an IPv4 or IPv6 packet (UDP, no IPv6 extension headers), or None."""
    if len(pkt) < 20:
        return None
    ver = pkt[0] >> 4
    if ver == 4:
        ihl = (pkt[0] & 0xF) * 4
        if pkt[9] != 17 or len(pkt) < ihl + 8 or struct.unpack_from("!H", pkt, 6)[0] & 0x3FFF:
            return None  # not UDP, or a fragment
        fam, src, dst, l4 = socket.AF_INET, pkt[12:16], pkt[16:20], ihl
    elif ver == 6:
        if len(pkt) < 48 or pkt[6] != 17:
            return None
        fam, src, dst, l4 = socket.AF_INET6, pkt[8:24], pkt[24:40], 40
    else:
        return None
    sport, dport, ulen = struct.unpack_from("!HHH", pkt, l4)
    dns = pkt[l4 + 8:l4 + max(ulen, 8)]
    q = parse_question(dns)
    if q is None:
        return None
    return Query(fam, socket.inet_ntop(fam, src), socket.inet_ntop(fam, dst), sport, dport,
                 dns, q[0], q[1], q[2], q[3])


def answer(q: Query, mode: str) -> bytes:
    """The DNS response to a blocked query (RFC 1035 4.1): NXDOMAIN, or for "sinkhole" an
    A 0.0.0.0 / AAAA :: answer (other types: no data), with the query's id, opcode and RD."""
    qflags = struct.unpack_from("!H", q.dns, 2)[0]
    flags = 0x8000 | (qflags & 0x7900) | 0x0080  # QR, opcode + RD copied, RA
    rr = b""
    if mode == "nxdomain":
        flags |= 3
    elif q.qtype in (1, 28):
        rdata = b"\0" * (4 if q.qtype == 1 else 16)
        rr = struct.pack("!HHHIH", 0xC00C, q.qtype, 1, 60, len(rdata)) + rdata
    return struct.pack("!HHHHHH", q.qid, flags, 1, 1 if rr else 0, 0, 0) + q.question + rr


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def reply_packet(q: Query, dns: bytes) -> bytes:
    """An IP/UDP packet carrying `dns` from the queried server back to the client."""
    src, dst = (socket.inet_pton(q.family, a) for a in (q.dst, q.src))
    ulen = 8 + len(dns)
    udp = struct.pack("!HHHH", q.dport, q.sport, ulen, 0) + dns
    if q.family == socket.AF_INET:
        pseudo = src + dst + struct.pack("!BBH", 0, 17, ulen)
    else:
        pseudo = src + dst + struct.pack("!I3xB", ulen, 17)
    c = _csum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    if q.family == socket.AF_INET:
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, 0, 0x4000, 64, 17, 0, src, dst)
        hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
        return hdr + udp
    return struct.pack("!IHBB16s16s", 6 << 28, ulen, 17, 64, src, dst) + udp


def frame(dst_mac: bytes, src_mac: bytes, q: Query, packet: bytes) -> bytes:
    etype = 0x0800 if q.family == socket.AF_INET else 0x86DD
    return dst_mac + src_mac + struct.pack("!H", etype) + packet


def qtype_name(t: int) -> str:
    return QTYPES.get(t, str(t))
