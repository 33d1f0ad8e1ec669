"""The firewall NF's pure parts: config validation and ruleset compilation, counters read
from nft's JSON, and the conntrack part of its state document. No root, no nft."""

from __future__ import annotations

import pytest

from tests.unit.catalogue_nf import load

fw = load("firewall", "fw")
PORTS = ("lan", "wan")


def test_defaults_are_filled() -> None:
    assert fw.normalise({}) == {"default_out": "allow", "default_in": "deny",
                                "allow_dhcp": True, "rules": []}
    r = fw.normalise({"rules": [{"action": "deny"}]})["rules"][0]
    assert r == {"action": "deny", "direction": "out", "proto": "any"}


def test_addresses_are_normalised_to_networks() -> None:
    r = fw.normalise({"rules": [{"action": "allow", "src": "10.0.0.7/8",
                                 "dst": "192.0.2.1"}]})["rules"][0]
    assert r["src"] == "10.0.0.0/8" and r["dst"] == "192.0.2.1/32"


@pytest.mark.parametrize(("cfg", "message"), [
    ({"colour": "red"}, "unknown config keys: ['colour']"),
    ({"default_in": "maybe"}, "default_in: must be allow or deny"),
    ({"allow_dhcp": 1}, "allow_dhcp: must be a boolean"),
    ({"rules": [{"action": "allow"}] * 257}, "rules: must be a list of at most 256 rules"),
    ({"rules": ["x"]}, "rules[0]: must be an object"),
    ({"rules": [{"action": "allow", "port": 1}]}, "rules[0]: unknown keys ['port']"),
    ({"rules": [{"action": "reject"}]}, "rules[0].action: must be allow or deny"),
    ({"rules": [{"action": "deny", "direction": "up"}]}, "rules[0].direction"),
    ({"rules": [{"action": "deny", "proto": "sctp"}]}, "rules[0].proto"),
    ({"rules": [{"action": "deny", "dport": 0}]}, "rules[0].dport: must be an integer"),
    ({"rules": [{"action": "deny", "dport": True}]}, "rules[0].dport: must be an integer"),
    ({"rules": [{"action": "deny", "proto": "icmp", "dport": 1}]},
     "rules[0]: dport cannot be used with proto icmp"),
    ({"rules": [{"action": "deny", "src": "10.0.0.300/8"}]}, "rules[0].src:"),
    ({"rules": [{"action": "deny", "dst": 5}]}, "rules[0].dst: must be an IPv4 address"),
])
def test_invalid_configs_die_naming_the_field(cfg: dict[str, object], message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        fw.normalise(cfg)
    assert exc.value.code == 1
    assert message in capsys.readouterr().err


def test_rule_lines() -> None:
    line = fw.rule_line(3, {"action": "allow", "proto": "tcp", "dport": 443,
                            "dst": "192.0.2.0/24"})
    assert line == '\t\tip daddr 192.0.2.0/24 meta l4proto tcp th dport 443 counter accept ' \
                   'comment "rule 3"'
    assert "meta l4proto { tcp, udp } th dport 53 counter drop" in fw.rule_line(
        0, {"action": "deny", "proto": "any", "dport": 53})
    assert "meta l4proto { icmp, ipv6-icmp }" in fw.rule_line(
        0, {"action": "deny", "proto": "icmp"})
    assert "meta l4proto icmp " in fw.rule_line(
        0, {"action": "deny", "proto": "icmp", "src": "10.0.0.0/8"})


def test_ruleset_marks_by_port_and_keeps_rule_order_per_direction() -> None:
    cfg = {"default_out": "deny", "default_in": "allow", "allow_dhcp": False, "rules": [
        {"action": "allow", "proto": "tcp", "dport": 80},
        {"action": "deny", "direction": "in", "proto": "udp"},
        {"action": "allow", "proto": "udp", "dport": 53},
    ]}
    text = fw.build_ruleset(cfg, ("lan0", "wan0"))
    lines = text.splitlines()
    # both tables are replaced in one transaction
    assert lines[:4] == ["table bridge fate_fw_dir", "delete table bridge fate_fw_dir",
                         "table inet fate_fw", "delete table inet fate_fw"]
    assert '\t\tiifname "lan0" meta mark set 0x1' in lines
    assert '\t\tiifname "wan0" meta mark set 0x2' in lines
    out = lines[lines.index("\tchain outbound {"):lines.index("\tchain inbound {")]
    assert [ln.rsplit('"', 2)[1] for ln in out if "comment" in ln] == [
        "rule 0", "rule 2", "default_out"]
    assert out[-2] == '\t\tcounter drop comment "default_out"'
    inb = lines[lines.index("\tchain inbound {"):]
    assert 'comment "dhcp"' not in text
    assert '\t\tmeta l4proto udp counter drop comment "rule 1"' in inb
    assert '\t\tcounter accept comment "default_in"' in inb
    assert text.endswith("}\n")


def test_ruleset_lets_dhcp_replies_in_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NF_PORTS", "lan wan")
    text = fw.build_ruleset({})
    assert '\t\tudp sport 67 udp dport 68 counter accept comment "dhcp"' in text
    assert 'ct state established,related counter accept comment "established"' in text


def test_ruleset_needs_two_ports(monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NF_PORTS", "lan wan extra")
    with pytest.raises(SystemExit):
        fw.build_ruleset({})
    assert "firewall needs exactly two ports" in capsys.readouterr().err


def test_counters_from_nft_json() -> None:
    listing = {"nftables": [
        {"metainfo": {"version": "1.0.6"}},
        {"rule": {"comment": "rule 0", "expr": [{"match": {}},
                                                {"counter": {"packets": 3, "bytes": 180}},
                                                {"accept": None}]}},
        {"rule": {"expr": [{"counter": {"packets": 9, "bytes": 9}}]}},  # uncommented
        {"rule": {"comment": "default_in", "expr": [{"counter": {"packets": 1, "bytes": 60}}]}},
    ]}
    assert fw.st.rule_counters(listing) == {"rule 0": {"packets": 3, "bytes": 180},
                                         "default_in": {"packets": 1, "bytes": 60}}


def test_conntrack_state_entries() -> None:
    listing = "-A -t 60 -u SEEN_REPLY -s 10.0.0.2 ...\nnot an entry\n-A -t 1 ...\n"
    entries = fw.st.saved_entries(listing)
    assert entries == ["-A -t 60 -u SEEN_REPLY -s 10.0.0.2 ...", "-A -t 1 ..."]
    assert fw.st.check_entries(entries) == entries
    assert fw.st.check_entries([]) == []


@pytest.mark.parametrize("bad", ["-A x", ["-D x"], ["-A x\n-A y"], [7]])
def test_malformed_conntrack_state_dies(bad: object) -> None:
    with pytest.raises(SystemExit):
        fw.st.check_entries(bad)
