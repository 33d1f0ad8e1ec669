"""The NAT's pure parts: its config checks and the ruleset it compiles. No root, no nft."""

from __future__ import annotations

import pytest

from tests.unit.catalogue_nf import load

nat = load("nat", "nat")
PORTS = ("lan", "wan")


def test_defaults_translate_everything_from_lan_behind_the_address() -> None:
    cfg = nat.normalise({"address": "10.90.254.1/16"})
    assert cfg == {"address": "10.90.254.1/16", "internal": ["0.0.0.0/0"], "exclude": [],
                   "port_min": 1024, "port_max": 65535, "block_inbound": True}
    rules = nat.build_ruleset(cfg, PORTS)
    assert ("meta mark 0x1 ip saddr { 0.0.0.0/0 } meta l4proto { tcp, udp } counter "
            "snat to 10.90.254.1:1024-65535") in rules
    assert 'counter snat to 10.90.254.1 comment "snat other"' in rules
    assert 'ct state new ip daddr { 0.0.0.0/0 } counter drop comment "inbound"' in rules
    assert 'iifname "lan" meta mark set 0x1' in rules


def test_exclusions_ports_and_open_inbound() -> None:
    rules = nat.build_ruleset({"address": "192.0.2.1/24", "internal": ["10.1.2.3/24"],
                               "exclude": ["10.0.0.0/8"], "port_min": 40000,
                               "port_max": 40100, "block_inbound": False}, PORTS)
    assert "ip saddr { 10.1.2.0/24 } ip daddr != { 10.0.0.0/8 }" in rules
    assert "snat to 192.0.2.1:40000-40100" in rules
    assert "inbound" not in rules


@pytest.mark.parametrize(("cfg", "message"), [
    ({}, "address: required"),
    ({"address": "10.0.0.1"}, "address: must be an IPv4 address with a prefix length"),
    ({"address": "10.0.0.300/8"}, "address:"),
    ({"address": "10.0.0.1/8", "nat": 1}, "unknown config keys: ['nat']"),
    ({"address": "10.0.0.1/8", "internal": []}, "internal: must be a list of 1-64"),
    ({"address": "10.0.0.1/8", "internal": ["x"]}, "internal[0]:"),
    ({"address": "10.0.0.1/8", "port_min": 2000, "port_max": 1999},
     "port_min (2000) is above port_max (1999)"),
    ({"address": "10.0.0.1/8", "port_min": 80}, "port_min: must be an integer 1024-65535"),
    ({"address": "10.0.0.1/8", "block_inbound": "yes"}, "block_inbound: must be a boolean"),
    ({"address": "10.0.0.1/8", "gateway": "192.0.2.1"}, "gateway: 192.0.2.1 is not inside"),
    ({"address": "10.0.0.1/8", "gateway": "10.0.0.1"}, "gateway: 10.0.0.1 is the NF's own"),
    ({"address": "10.1.0.1/16", "internal": ["10.1.0.0/24"]},
     "address: 10.1.0.1 is inside an internal network"),
])
def test_invalid_configs_die_naming_the_field(cfg: dict[str, object], message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        nat.normalise(cfg)
    assert message in capsys.readouterr().err


def test_nat_entries_are_those_with_a_source_nat_binding() -> None:
    entries = [
        "-A -t 28 -u SEEN_REPLY -s 10.90.1.1 -d 10.255.0.1 -r 10.255.0.1 -n 10.90.254.1 "
        "-p icmp --icmp-type 8 --icmp-code 0 --icmp-id 1",
        "-A -t 100 -s 10.90.1.1 -d 10.90.1.2 -p udp --sport 1 --dport 2",
    ]
    assert nat.nat_entries(entries) == 1
