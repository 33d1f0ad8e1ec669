"""The load balancer's pure parts: config checks, weighted slots, the ruleset, and counting
connections per backend from conntrack's save format. No root, no nft."""

from __future__ import annotations

import pytest

from tests.unit.catalogue_nf import load

lb = load("load-balancer", "lb")
PORTS = ("lan", "wan")
SVC = {"vip": "10.255.0.100", "port": 80,
       "backends": [{"address": "10.255.0.11"}, {"address": "10.255.0.12", "port": 8080,
                                                 "weight": 3}]}
CFG = {"address": "10.90.253.1/16", "gateway": "10.90.0.1", "services": [SVC]}


def test_defaults_and_weighted_round_robin() -> None:
    cfg = lb.normalise(CFG)
    s = cfg["services"][0]
    assert (s["name"], s["proto"], s["method"]) == ("service0", "tcp", "round-robin")
    assert s["backends"][0] == {"address": "10.255.0.11", "port": 80, "weight": 1}
    assert lb.slots(s["backends"])[0] == 4
    rules = lb.build_ruleset(CFG, PORTS)
    assert ("meta mark 0x1 ip daddr 10.255.0.100 tcp dport 80 counter dnat ip to numgen inc "
            "mod 4 map { 0 : 10.255.0.11 . 80, 1-3 : 10.255.0.12 . 8080 }") in rules
    assert ('ct state new ct original ip daddr 10.255.0.100 ip daddr 10.255.0.12 tcp dport '
            '8080 counter comment "service 0 backend 1"') in rules


def test_methods() -> None:
    for method, picker in (("random", "numgen random mod 4"),
                           ("source-hash", "jhash ip saddr mod 4 seed 0x4e46")):
        cfg = {**CFG, "services": [{**SVC, "method": method, "proto": "udp"}]}
        rules = lb.build_ruleset(cfg, PORTS)
        assert f"udp dport 80 counter dnat ip to {picker} map" in rules


def test_vips_on_the_nf_subnet_are_answered_by_br0() -> None:
    cfg = lb.normalise({**CFG, "services": [{**SVC, "vip": "10.90.200.1"}, SVC | {"port": 81}]})
    assert lb.vip_addresses(cfg) == ("10.90.200.1/32",)


@pytest.mark.parametrize(("cfg", "message"), [
    ({"services": [SVC]}, "address: required"),
    ({"address": "10.90.253.1/16"}, "services: must be a list of 1-16"),
    ({**CFG, "services": [{**SVC, "method": "least-conn"}]},
     "services[0].method: must be one of round-robin, random, source-hash"),
    ({**CFG, "services": [{**SVC, "backends": []}]}, "services[0].backends: must be a list"),
    ({**CFG, "services": [{**SVC, "backends": [{"address": "10.255.0.11", "weight": 0}]}]},
     "services[0].backends[0].weight: must be an integer 1-100"),
    ({**CFG, "services": [{**SVC, "backends": [{"address": "10.255.0.11"}] * 2}]},
     "the same address and port twice"),
    ({**CFG, "services": [{**SVC, "backends": [{"address": "10.255.0.100"}]}]},
     "cannot be the service address itself"),
    ({**CFG, "services": [SVC, SVC]}, "two services have the same vip, port and proto"),
    ({"address": "10.90.253.1/16", "services": [SVC]},
     "backend 10.255.0.11 of service0 is outside 10.90.0.0/16; set gateway"),
    ({**CFG, "services": [{**SVC, "port": 0}]}, "services[0].port: must be an integer 1-65535"),
    ({**CFG, "services": [{**SVC, "name": "a b"}]}, "services[0].name:"),
    ({**CFG, "extra": 1}, "unknown config keys: ['extra']"),
])
def test_invalid_configs_die_naming_the_field(cfg: dict[str, object], message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        lb.normalise(cfg)
    assert message in capsys.readouterr().err


def test_active_connections_per_backend_from_conntrack() -> None:
    entries = [
        "-A -t 119 -u SEEN_REPLY,ASSURED -s 10.90.1.1 -d 10.255.0.100 -g 10.255.0.12 "
        "-q 10.90.1.1 -p tcp --sport 49312 --dport 80 --reply-port-src 8080 "
        "--reply-port-dst 49312 --state ESTABLISHED",
        "-A -t 119 -s 10.90.1.1 -d 10.255.0.100 -g 10.255.0.11 -p tcp --sport 2 --dport 80",
        "-A -t 119 -s 10.90.1.1 -d 10.255.0.100 -g 10.255.0.11 -p tcp --sport 3 --dport 443",
    ]
    assert lb.active(entries, "10.255.0.100", 80) == {"10.255.0.12": 1, "10.255.0.11": 1}
    doc = lb.status_doc(lb.normalise(CFG), {"service 0": {"packets": 5, "bytes": 1},
                                            "service 0 backend 1": {"packets": 4, "bytes": 1}},
                        entries)
    assert doc[0]["connections"] == 5
    assert [(b["connections"], b["active"]) for b in doc[0]["backends"]] == [(0, 1), (4, 1)]
