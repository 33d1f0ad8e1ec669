"""Each CPE's access addressing, from the topology (pure)."""

import ipaddress

import pytest

from netfate.access import addressing
from netfate.access.addressing import cpe_access, for_index, plan, services_mac, services_netns
from netfate.errors import InvalidInput


def test_default_testbed_plan() -> None:
    p = plan("10.90.0.0/16", "10.90.0.1", ["cpe1", "cpe2", "cpe3"])
    assert list(p) == ["cpe1", "cpe2", "cpe3"]
    c1, c3 = p["cpe1"], p["cpe3"]
    assert c1.services_ip == "10.90.16.1"
    assert (c1.pool_start, c1.pool_end) == ("10.90.16.10", "10.90.16.250")
    assert (c3.services_ip, c3.pool_start, c3.pool_end) == ("10.90.18.1", "10.90.18.10",
                                                           "10.90.18.250")
    assert c1.prefixlen == 16 and c1.netmask == "255.255.0.0"
    assert c1.router == "10.90.0.1" and c1.dns == c1.services_ip
    assert c1.services_cidr == "10.90.16.1/16"
    assert c1.netns == services_netns("cpe1") == "fate-s-cpe1"
    assert c1.host_if == "fate-cpe1-svc" and len(c1.host_if) <= 15


def test_services_mac_is_stable_local_unicast_and_distinct() -> None:
    macs = {services_mac(f"cpe{i}") for i in range(50)}
    assert len(macs) == 50
    m = services_mac("cpe1")
    assert m == services_mac("cpe1") and m.startswith("02:fb:")
    first = int(m[:2], 16)
    assert first & 0x02 and not first & 0x01  # locally administered, unicast


def test_dataclass_is_frozen() -> None:
    c = plan("10.90.0.0/16", "10.90.0.1", ["cpe1"])["cpe1"]
    with pytest.raises(AttributeError):
        c.services_ip = "1.2.3.4"  # type: ignore[misc]


def test_long_node_names_still_give_short_interface_names() -> None:
    c = plan("10.90.0.0/16", "10.90.0.1", ["a-very-long-cpe-name-indeed"])
    assert len(c["a-very-long-cpe-name-indeed"].host_if) <= 15


def test_other_subnet_is_followed() -> None:
    c = for_index("10.50.0.0/16", "10.50.0.1", "cpe", 2, framed_pool="10.50.100.0/22")
    assert (c.services_ip, c.pool_start, c.pool_end) == ("10.50.18.1", "10.50.18.10",
                                                        "10.50.18.250")


def test_pools_that_do_not_fit_the_subnet() -> None:
    names = [f"c{i}" for i in range(17)]  # a /19 ends at 10.90.31.255: blocks 16-31 fit
    with pytest.raises(InvalidInput, match=r"c16 \(CPE #16\).*does not fit in the subnet"):
        plan("10.90.0.0/19", "10.90.0.1", names)
    assert len(plan("10.90.0.0/19", "10.90.0.1", names[:16])) == 16


def test_pools_colliding_with_the_framed_ip_pool() -> None:
    names = [f"cpe{i}" for i in range(90)]  # CPE #84 is block 100 = 10.90.100.0/24
    with pytest.raises(InvalidInput, match=r"cpe84.*overlaps the RADIUS Framed-IP pool"):
        plan("10.90.0.0/16", "10.90.0.1", names)
    assert len(plan("10.90.0.0/16", "10.90.0.1", names[:84])) == 84


def test_pools_colliding_with_the_gateway() -> None:
    with pytest.raises(InvalidInput, match=r"collides with the gateway 10\.90\.17\.50"):
        plan("10.90.0.0/16", "10.90.17.50", ["cpe1", "cpe2"])
    with pytest.raises(InvalidInput, match="collides with the gateway"):
        plan("10.90.0.0/16", "10.90.16.1", ["cpe1"])  # the services address itself


def test_reserved_addresses_stay_out_of_pools() -> None:
    with pytest.raises(InvalidInput, match=r"reserved address 10\.90\.16\.20"):
        plan("10.90.0.0/16", "10.90.0.1", ["cpe1"], reserved=["10.90.16.20"])
    plan("10.90.0.0/16", "10.90.0.1", ["cpe1"], reserved=["10.90.1.1"])


@pytest.mark.parametrize("subnet,gateway,cpes,match", [
    ("10.90.0.0/33", "10.90.0.1", ["cpe1"], "not an IPv4 network"),
    ("10.90.0.0/16", "10.91.0.1", ["cpe1"], "not in the subnet"),
    ("10.90.0.0/16", "nope", ["cpe1"], "not an IPv4 address"),
    ("10.90.0.0/16", "10.90.0.1", ["cpe1", "cpe1"], "repeat"),
    ("10.90.0.0/16", "10.90.0.1", ["CPE!"], "not a valid name"),
])
def test_bad_input_is_named(subnet: str, gateway: str, cpes: list[str], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        plan(subnet, gateway, cpes)


def test_explicit_addressing_is_checked() -> None:
    ok = cpe_access("cpe9", "10.90.40.1", "10.90.40.10", "10.90.40.20", 16, "10.90.0.1")
    assert ok.dns == "10.90.40.1"
    bad = [
        (("10.90.40.1", "10.90.40.30", "10.90.40.20", 16, "10.90.0.1"), "empty"),
        (("10.90.40.15", "10.90.40.10", "10.90.40.20", 16, "10.90.0.1"), "inside its pool"),
        (("10.90.40.1", "10.90.40.10", "10.91.0.20", 16, "10.90.0.1"), "not a host address"),
        (("10.90.40.1", "10.90.99.10", "10.90.100.20", 16, "10.90.0.1"), "Framed-IP pool"),
        (("10.90.101.1", "10.90.40.10", "10.90.40.20", 16, "10.90.0.1"), "Framed-IP pool"),
        (("10.90.40.1", "10.90.40.10", "10.90.40.20", 31, "10.90.0.1"), "prefixlen"),
    ]
    for args, match in bad:
        with pytest.raises(InvalidInput, match=match):
            cpe_access("cpe9", *args)


def test_dns_records() -> None:
    c = plan("10.90.0.0/16", "10.90.0.1", ["cpe1"])["cpe1"]
    assert addressing.dns_records(c) == {"portal.netfate": "10.90.16.1",
                                         "inet.netfate": "10.255.0.1"}


def test_no_pool_address_is_the_network_or_broadcast() -> None:
    for c in plan("10.90.0.0/16", "10.90.0.1", [f"c{i}" for i in range(20)]).values():
        net = ipaddress.IPv4Network(f"{c.services_ip}/{c.prefixlen}", strict=False)
        for a in (c.pool_start, c.pool_end, c.services_ip):
            assert ipaddress.IPv4Address(a) not in (net.network_address, net.broadcast_address)
