"""The content filter's pure parts: config checks, the decision for a name, DNS and packet
parsing, the forged answer (checked by decoding it again), and counter merging. No root."""

from __future__ import annotations

import socket
import struct

import pytest

from tests.unit.catalogue_nf import load

df = load("content-filter", "dnsfilter")
cf = load("content-filter", "cf")
nfq = load("content-filter", "nfq")
BUILTIN = {"gambling": ["bet.example", "casino.example"], "test": ["blocked.test"]}


def query(name: str, qtype: int = 1, qid: int = 7, flags: int = 0x0100) -> bytes:
    q = struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 1)
    q += b"".join(bytes([len(lb)]) + lb.encode() for lb in name.split(".")) + b"\0"
    return q + struct.pack("!HH", qtype, 1) + b"\0\0\x29\x10\0\0\0\0\0\0\0"  # + EDNS OPT


def udp4(dns: bytes, src: str = "10.90.1.1", dst: str = "10.255.0.1") -> bytes:
    udp = struct.pack("!HHHH", 40000, 53, 8 + len(dns), 0) + dns
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0x4000, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip + udp


def test_defaults() -> None:
    assert df.normalise({}, BUILTIN) == {
        "block": [], "allow": [], "categories": [], "custom_categories": {},
        "answer": "nxdomain", "block_dns_tcp": True, "notify": False, "cooldown_s": 60}


def test_names_are_normalised() -> None:
    cfg = df.normalise({"block": ["*.Example.COM.", ".ads.example"]}, BUILTIN)
    assert cfg["block"] == ["ads.example", "example.com"]


@pytest.mark.parametrize(("cfg", "message"), [
    ({"blocks": []}, "unknown config keys: ['blocks']"),
    ({"block": "example.com"}, "block: must be a list"),
    ({"block": ["exa mple.com"]}, "block[0]: 'exa mple.com' is not a domain name"),
    ({"block": ["a..b"]}, "block[0]:"),
    ({"block": ["x" * 64 + ".com"]}, "block[0]:"),
    ({"allow": [3]}, "allow[0]: must be a domain name string"),
    ({"categories": ["weapons"]}, "categories[0]: unknown category 'weapons'"),
    ({"custom_categories": {"Bad Name": []}}, "is not a category name"),
    ({"custom_categories": {"mine": ["ok.example", "not ok"]}},
     "custom_categories.mine[1]:"),
    ({"answer": "refused"}, "answer: must be one of nxdomain, sinkhole"),
    ({"notify": 1}, "notify: must be a boolean"),
    ({"cooldown_s": 0}, "cooldown_s: must be an integer 1-86400"),
])
def test_invalid_configs_die_naming_the_field(cfg: dict[str, object], message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        df.normalise(cfg, BUILTIN)
    assert message in capsys.readouterr().err


def test_allow_wins_then_block_then_categories_on_label_boundaries() -> None:
    cfg = df.normalise({"block": ["example.com"], "allow": ["ok.example.com"],
                        "categories": ["gambling", "mine"],
                        "custom_categories": {"mine": ["mine.example"]}}, BUILTIN)
    p = df.Policy(cfg, BUILTIN)
    assert p.decide("www.example.com") == df.Verdict(True, "example.com", "blocklist")
    assert p.decide("EXAMPLE.com.") == df.Verdict(True, "example.com", "blocklist")
    assert p.decide("a.ok.example.com") == df.Verdict(False, "ok.example.com", "allow")
    assert p.decide("notexample.com").blocked is False
    assert p.decide("www.casino.example") == df.Verdict(True, "casino.example", "gambling")
    assert p.decide("mine.example").category == "mine"
    assert p.decide("blocked.test").blocked is False  # category not chosen


def test_parse_a_query_in_ipv4_and_skip_what_is_not_one() -> None:
    q = df.parse_packet(udp4(query("WWW.Example.com", qtype=28)))
    assert q is not None
    assert (q.src, q.dst, q.sport, q.dport, q.qid, q.qname, q.qtype) == (
        "10.90.1.1", "10.255.0.1", 40000, 53, 7, "www.example.com", 28)
    assert df.parse_packet(udp4(query("x.example", flags=0x8180))) is None  # a response
    assert df.parse_packet(udp4(query("x.example")[:14])) is None  # truncated name
    pointer = struct.pack("!HHHHHH", 1, 0x100, 1, 0, 0, 0) + b"\xc0\x0c" + b"\0\1\0\1"
    assert df.parse_packet(udp4(pointer)) is None
    assert df.parse_packet(b"\x45" + b"\0" * 30) is None


def decode(pkt: bytes) -> tuple[str, str, int, int, bytes]:
    """(src, dst, sport, dport, dns) of an IPv4/UDP packet, checking both checksums."""
    assert df._csum(pkt[:20]) == 0
    src, dst = socket.inet_ntoa(pkt[12:16]), socket.inet_ntoa(pkt[16:20])
    udp = pkt[20:]
    pseudo = pkt[12:20] + struct.pack("!BBH", 0, 17, len(udp))
    assert df._csum(pseudo + udp) == 0
    sport, dport, ulen = struct.unpack_from("!HHH", udp, 0)
    assert ulen == len(udp)
    return src, dst, sport, dport, udp[8:]


def test_nxdomain_answer_comes_from_the_queried_server() -> None:
    q = df.parse_packet(udp4(query("ads.example")))
    src, dst, sport, dport, dns = decode(df.reply_packet(q, df.answer(q, "nxdomain")))
    assert (src, dst, sport, dport) == ("10.255.0.1", "10.90.1.1", 53, 40000)
    qid, flags, qd, an = struct.unpack_from("!HHHH", dns, 0)
    assert (qid, qd, an) == (7, 1, 0)
    assert flags & 0x8000 and flags & 0x0100 and flags & 0xF == 3  # QR, RD kept, NXDOMAIN
    assert dns[12:] == q.question


def test_sinkhole_answers_a_and_aaaa_with_the_unspecified_address() -> None:
    for qtype, rdata in ((1, b"\0" * 4), (28, b"\0" * 16)):
        q = df.parse_packet(udp4(query("ads.example", qtype=qtype)))
        dns = df.answer(q, "sinkhole")
        flags, _, an = struct.unpack_from("!HHH", dns, 2)
        assert flags & 0xF == 0 and an == 1
        assert dns.endswith(struct.pack("!H", len(rdata)) + rdata)
    q = df.parse_packet(udp4(query("ads.example", qtype=16)))  # TXT: no data
    assert struct.unpack_from("!H", df.answer(q, "sinkhole"), 6)[0] == 0


def test_ipv6_reply_has_a_valid_udp_checksum() -> None:
    dns = query("ads.example")
    src, dst = socket.inet_pton(socket.AF_INET6, "fd00::1"), socket.inet_pton(
        socket.AF_INET6, "fd00::53")
    udp = struct.pack("!HHHH", 5353, 53, 8 + len(dns), 0) + dns
    pkt = struct.pack("!IHBB16s16s", 6 << 28, len(udp), 17, 64, src, dst) + udp
    q = df.parse_packet(pkt)
    assert q is not None and q.family == socket.AF_INET6 and q.src == "fd00::1"
    out = df.reply_packet(q, df.answer(q, "nxdomain"))
    body = out[40:]
    pseudo = out[8:24] + out[24:40] + struct.pack("!I3xB", len(body), 17)
    assert df._csum(pseudo + body) == 0 and out[8:24] == dst


def test_ruleset_counts_dns_and_drops_dns_over_tcp_and_tls() -> None:
    rules = cf.build_ruleset({}, ("lan", "wan"))
    assert 'meta mark 0x1 udp dport 53 counter comment "dns"' in rules
    assert 'meta mark 0x1 tcp dport { 53, 853 } counter drop comment "dns-tcp"' in rules
    assert "dns-tcp" not in cf.build_ruleset({"block_dns_tcp": False}, ("lan", "wan"))
    assert "-j NFQUEUE --queue-num 0\n" in cf.queue_rules()
    assert "--queue-bypass" not in cf.queue_rules()  # fail closed


def test_counters_merge_and_stay_bounded() -> None:
    a = cf.empty_stats()
    cf.merge(a, {"blocked": 2, "queries": 5, "by_category": {"ads": 2},
                 "recent": [{"qname": "x"}], "allowed": -3, "by_client": {"c": "x"}})
    cf.merge(a, {"blocked": 1, "by_category": {"ads": 1, "test": 1}})
    assert (a["blocked"], a["queries"], a["allowed"]) == (3, 5, 0)
    assert a["by_category"] == {"ads": 3, "test": 1} and a["by_client"] == {}
    many = {"by_domain": {f"d{i}.example": i for i in range(300)}}
    assert len(cf.merge(cf.empty_stats(), many)["by_domain"]) == cf.TOP_DOMAINS


def test_builtin_categories_are_valid_names() -> None:
    for name, doms in cf.builtin().items():
        cfg = df.normalise({"categories": [name]}, cf.builtin())
        assert df.Policy(cfg, cf.builtin()).decide(f"www.{doms[0]}").category == name


def test_nfqueue_messages_round_trip() -> None:
    hdr = struct.pack("!IHB", 42, 0x0800, 2) + b"\0"
    hw = struct.pack("!HH", 6, 0) + bytes.fromhex("0242ac110002") + b"\0\0"
    body = struct.pack("=BBH", 2, 0, 0) + nfq.attr(nfq.A_PACKET_HDR, hdr) + nfq.attr(
        nfq.A_HWADDR, hw) + nfq.attr(nfq.A_PAYLOAD, b"abc")
    msg = struct.pack("=IHHII", 16 + len(body), (3 << 8) | nfq.MSG_PACKET, 0, 1, 0) + body
    err = struct.pack("=IHHII", 36, nfq.NLMSG_ERROR, 0, 2, 0) + struct.pack("=i", -1) + b"\0" * 16
    packets, errors = nfq.parse(msg + err)
    assert packets == [nfq.Packet(42, 0x0800, bytes.fromhex("0242ac110002"), b"abc")]
    assert errors == [-1]


DOMAINS = ["evil.com\nsomething", "..", "*.", "ü.example", "a" * 64 + ".com", "*.*.x", "a..b",
           ".", "example.com", "*.example.com", " Example.COM. ", "..example.com", "a_b.c-d",
           "x" * 63, "*.x"]


@pytest.mark.parametrize("name", DOMAINS)
def test_the_platform_refuses_exactly_the_names_the_nf_refuses(name: str) -> None:
    """The descriptor's schema refuses, before any script runs (422 from the API), every
    domain name the NF's own check would refuse at create or update, and no other
    (new-user probe, 2026-12-03: "evil.com\\nsomething" passed the platform)."""
    from netfate import catalogue
    from netfate.bundle import inspect_bundle
    from netfate.errors import InvalidInput

    desc = inspect_bundle(catalogue.bundle_bytes("content-filter"))[0]
    try:
        df.domain(name, "block[0]")
        nf_ok = True
    except SystemExit:
        nf_ok = False
    for key in ("block", "allow"):
        if nf_ok:
            desc.validate_config({key: [name]})
        else:
            with pytest.raises(InvalidInput, match=key):
                desc.validate_config({key: [name]})
