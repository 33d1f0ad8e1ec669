"""Which address a device at a node may be associated with (orchestrator/access_subnet.py),
and that every path through sessions.associate (the API, the UI's re-plan, a CoA, fast
re-authentication with a RADIUS Framed-IP) refuses another before anything changes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from netfate.bus.messages import ServicesPort, SwitchPorts
from netfate.db import Database, repo, sqlite_url
from netfate.errors import InvalidInput
from netfate.orchestrator import sessions
from netfate.orchestrator.access_subnet import AccessSubnet, check_station

ACCESS = AccessSubnet.of("10.90.0.0/16", "10.90.0.1")
SVC = "10.90.16.1"
MAC = "02:00:00:00:00:01"


def test_access_subnet_of_the_settings() -> None:
    assert AccessSubnet.of("") is None
    a = AccessSubnet.of("10.90.0.0/16", "10.90.0.1")
    assert a is not None and str(a.network) == "10.90.0.0/16" and str(a.gateway) == "10.90.0.1"
    b = AccessSubnet.of("10.90.0.0/16", "192.168.0.1")  # a router elsewhere: none of its
    assert b is not None and b.gateway is None


@pytest.mark.parametrize(("services", "served"), [
    (SVC, True), ("10.90.255.254", True),
    ("10.90.0.0", False), ("10.90.255.255", False),  # no host's: no subnet known
    ("192.168.1.1", False), (None, False), ("", False), ("not-an-ip", False),
])
def test_a_node_serves_the_subnet_its_services_are_a_host_of(services: str | None,
                                                             served: bool) -> None:
    assert ACCESS is not None and ACCESS.serves(services) is served


@pytest.mark.parametrize("ip", ["10.90.1.1", "10.90.16.10", "10.90.16.250", "10.90.100.7",
                                "10.90.0.2", "10.90.255.254"])
def test_hosts_of_the_subnet_are_taken(ip: str) -> None:
    check_station("cpe1", MAC, ip, SVC, ACCESS)
    check_station("cpe1", None, ip, SVC, ACCESS)


@pytest.mark.parametrize(("ip", "words"), [
    ("10.91.0.5", ("10.91.0.5", "not in", "cpe1's access subnet 10.90.0.0/16")),
    ("10.90.0.0", ("network address", "10.90.0.0/16")),
    ("10.90.255.255", ("broadcast address", "10.90.0.0/16")),
    (SVC, ("access services", SVC, "10.90.0.0/16")),
    ("10.90.0.1", ("gateway", "10.90.0.1", "10.90.0.0/16")),
    ("127.0.0.1", ("127.0.0.1", "loopback")),
    ("224.0.0.1", ("224.0.0.1", "multicast")),
    ("0.0.0.0", ("0.0.0.0",)),
    ("255.255.255.255", ("255.255.255.255",)),
    ("10.90.1.01", ("10.90.1.01",)),  # not canonical: no address a switch would match
])
def test_other_addresses_are_refused_naming_the_address_and_subnet(
        ip: str, words: tuple[str, ...]) -> None:
    with pytest.raises(InvalidInput) as err:
        check_station("cpe1", MAC, ip, SVC, ACCESS)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


@pytest.mark.parametrize("mac", ["ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01",
                                 "00:00:00:00:00:00", "nope"])
def test_a_station_mac_is_unicast(mac: str) -> None:
    with pytest.raises(InvalidInput, match="mac"):
        check_station("cpe1", mac, None, SVC, ACCESS)


def test_no_known_subnet_checks_as_before_but_for_the_services_address() -> None:
    for services, access in ((None, ACCESS), ("192.168.1.1", ACCESS), (SVC, None)):
        check_station("cpe1", MAC, "10.91.0.5", services, access)
    with pytest.raises(InvalidInput, match=r"access services .* of node cpe1"):
        check_station("cpe1", MAC, "192.168.1.1", "192.168.1.1", ACCESS)
    with pytest.raises(InvalidInput, match="loopback"):
        check_station("cpe1", MAC, "127.0.0.1", None, None)


def test_a_point_to_point_subnet_has_no_network_or_broadcast_address() -> None:
    p2p = AccessSubnet.of("10.90.0.0/31")
    check_station("cpe1", MAC, "10.90.0.1", "10.90.0.0", p2p)  # RFC 3021: both are hosts


# -- every path: sessions.associate ---------------------------------------------------------

@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = Database.create(sqlite_url(tmp_path))
    with d.session() as s:
        repo.upsert_node(s, "cpe1", role="cpe", capabilities=[],
                         resources={"mem_total_mb": 1000, "mem_free_mb": 900, "cpu_util": 0.1})
        repo.create_user(s, "user1", "Pw-user1-long-enough")
    yield d
    d.dispose()


def coordinator() -> Any:
    """What sessions.associate reads of the coordinator before it plans: the switches'
    reported ports and the access subnet. Planning is a failure here."""
    def handle(*_: Any, **__: Any) -> None:
        raise AssertionError("a refused association was planned")

    ports = SwitchPorts(services=ServicesPort(port="svc", mac="02:fb:00:00:00:01", ip=SVC))
    return SimpleNamespace(switches=SimpleNamespace(ports={"cpe1": ports}),
                           access_subnet=ACCESS, handle=handle)


def test_a_framed_ip_outside_the_subnet_is_refused_on_every_path(db: Database) -> None:
    """E.g. fast re-authentication (reauth.py) associates with the Access-Accept's
    Framed-IP, a CoA or the UI with the session's address: the same refusal, nothing
    recorded."""
    with pytest.raises(InvalidInput, match=r"10\.91\.100\.7 is not in cpe1.s access subnet"):
        asyncio.run(sessions.associate(coordinator(), db, "user1", "cpe1", MAC,
                                       "10.91.100.7", login=sessions.Login()))
    with db.session() as s:
        u = repo.get_user(s, "user1")
        assert (u.access_node, u.ip, u.last_seen) == (None, None, None)
        assert repo.active_session(s, "user1") is None


def test_an_unknown_user_is_named_before_the_address(db: Database) -> None:
    from netfate.errors import NotFound

    with pytest.raises(NotFound, match="nobody"):
        asyncio.run(sessions.associate(coordinator(), db, "nobody", "cpe1", MAC,
                                       "10.91.100.7"))
