"""Addresses the load balancer and the NAT must refuse (found by the breaker pass): br0's
own address, VIPs and backends that are not unicast host addresses. Each dies naming the
field, before anything is configured."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.catalogue_nf import load

lb = load("load-balancer", "lb")
nat = load("nat", "nat")


def svc(**over: Any) -> dict[str, Any]:
    return {"vip": "10.90.0.50", "port": 80, "backends": [{"address": "10.90.0.10"}], **over}


@pytest.mark.parametrize(("cfg", "message"), [
    ({"address": "0.0.0.0/0", "services": [svc()]}, "address: 0.0.0.0 is not a unicast"),
    ({"address": "127.0.0.1/8", "services": [svc()]}, "address: 127.0.0.1 is not a unicast"),
    ({"address": "10.90.0.0/16", "services": [svc()]}, "network or broadcast address"),
    ({"address": "10.90.253.1/16", "services": [svc(vip="255.255.255.255")]},
     "services[0].vip: 255.255.255.255 is not a unicast"),
    ({"address": "10.90.253.1/16", "services": [svc(vip="224.0.0.1")]}, "not a unicast"),
    ({"address": "10.90.253.1/16", "services": [svc(vip="10.90.253.1")]},
     "vip 10.90.253.1 of service0 is the NF's own address"),
    ({"address": "10.90.253.1/16", "services": [svc(backends=[{"address": "0.0.0.0"}])]},
     "services[0].backends[0].address: 0.0.0.0 is not a unicast"),
    ({"address": "10.90.253.1/16", "services": [svc(backends=[{"address": "127.0.0.1"}])]},
     "not a unicast"),
    ({"address": "10.90.253.1/16",
      "services": [svc(backends=[{"address": "10.90.255.255"}])]},
     "network or broadcast address of 10.90.0.0/16"),
])
def test_load_balancer_refuses(cfg: dict[str, Any], message: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        lb.normalise(cfg)
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("address", ["0.0.0.0/0", "127.0.0.1/8", "224.0.0.1/4",
                                     "10.90.255.255/16"])
def test_nat_refuses_an_outside_address_that_is_not_a_host(
        address: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        nat.normalise({"address": address})
    assert "address:" in capsys.readouterr().err


def test_a_host_address_on_a_point_to_point_prefix_is_fine() -> None:
    assert lb.normalise({"address": "10.90.0.0/31", "gateway": "10.90.0.1",
                         "services": [svc()]})["address"] == "10.90.0.0/31"
