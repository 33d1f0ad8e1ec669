"""An association's address is one a device at the node can have (probe of `netfate users
associate`): a host of the node's access subnet, where its DHCP server hands out addresses
and the RADIUS Framed-IPs are reserved. Anything else is refused with 422 naming the address
and the subnet, and changes nothing: no session, no user record, no operation, no steering.

The nodes are fake agents; cpe1 reports its access services as the testbed's first CPE has
them (access.addressing.for_index) in the orchestrator's access subnet (its probe_subnet and
probe_gateway, the testbed's defaults). A node with no known access subnet is checked as
before (but for its own services address)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from netfate.access import addressing
from netfate.bus.messages import ServicesPort
from netfate.db import repo
from netfate.radius.pool import pick_address
from netfate.radius.settings import RadiusSettings
from tests.api.conftest import MakeAgent, MakeLive
from tests.api.harness import (
    AUTH,
    FakeAgent,
    LiveOrchestrator,
    LoopThread,
    assert_problem,
    unchanged,
    wait_op,
    wait_until,
)

API = "/api/v1"
SUBNET, GATEWAY = "10.90.0.0/16", "10.90.0.1"  # Settings' probe_subnet/probe_gateway defaults
CPE1 = addressing.for_index(SUBNET, GATEWAY, "cpe1", 0)  # services 10.90.16.1
MAC = "02:00:00:00:00:01"
# The user's stable address, as the RADIUS back end allocates it (radius/backend.py).
FRAMED = pick_address("user1", RadiusSettings().pool, ())


def services(cpe: addressing.CpeAccess) -> ServicesPort:
    return ServicesPort(port=addressing.services_host_if(cpe.node), mac=cpe.services_mac,
                        ip=cpe.services_ip)


@pytest.fixture
def cpe1(client: httpx.Client, make_agent: MakeAgent) -> Iterator[FakeAgent]:
    """cpe1 with its access services in the access subnet; user1."""
    agent = make_agent("cpe1", services=services(CPE1))
    r = client.post(f"{API}/users", json={"name": "user1", "password": "secret1",
                                          "required_nfs": ["firewall"]})
    assert r.status_code == 201, r.text
    yield agent


def associate(c: httpx.Client, node: str, ip: str, **kw: Any) -> httpx.Response:
    return c.post(f"{API}/users/user1/associate", json={"node": node, "mac": MAC, "ip": ip,
                                                        **kw})


def settled(c: httpx.Client, r: httpx.Response) -> None:
    """The association was taken, and its operations have ended."""
    assert r.status_code == 202, r.text
    for op in r.json()["vnf_lcm_op_occs"]:
        wait_op(c, op)


def active_session(live: LiveOrchestrator) -> Any:
    return live.orch.db.call(lambda s: repo.active_session(s, "user1"))


@pytest.mark.parametrize(("ip", "words"), [
    ("10.91.0.5", ("10.91.0.5", "not in", SUBNET)),           # beside the subnet
    ("192.168.1.10", ("192.168.1.10", "not in", SUBNET)),     # another network altogether
    ("10.90.0.0", ("10.90.0.0", "network address", SUBNET)),
    ("10.90.255.255", ("10.90.255.255", "broadcast address", SUBNET)),
    (CPE1.services_ip, (CPE1.services_ip, "access services", SUBNET)),  # its portal, DNS
    (GATEWAY, (GATEWAY, "gateway", SUBNET)),                   # the clients' router
    ("127.0.0.1", ("127.0.0.1",)),                             # the body's own checks
    ("224.0.0.1", ("224.0.0.1",)),
    ("0.0.0.0", ("0.0.0.0",)),
])
@pytest.mark.parametrize("login", [False, True])
def test_an_address_no_device_at_the_node_can_have_is_refused_and_changes_nothing(
        client: httpx.Client, live: LiveOrchestrator, cpe1: FakeAgent, ip: str,
        words: tuple[str, ...], login: bool) -> None:
    with unchanged(client):
        assert_problem(associate(client, "cpe1", ip, login=login), 422, *words)
    user = client.get(f"{API}/users/user1").json()
    assert (user["access_node"], user["mac"], user["ip"], user["last_seen"]) == \
        (None, None, None, None)
    assert active_session(live) is None
    assert cpe1.running_ids() == set()
    assert all(not st.users or all(not u.authenticated for u in st.users)
               for st in cpe1.switch_states)


def test_a_group_mac_is_refused(client: httpx.Client, cpe1: FakeAgent) -> None:
    with unchanged(client):
        for mac in ("ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "00:00:00:00:00:00"):
            r = client.post(f"{API}/users/user1/associate",
                            json={"node": "cpe1", "mac": mac, "ip": "10.90.1.1"})
            assert_problem(r, 422, "mac")


@pytest.mark.parametrize("ip", [
    "10.90.1.1",                   # a testbed client's static address (default.yaml)
    CPE1.pool_start, CPE1.pool_end,  # what its DHCP server hands out before login
    "10.90.17.20",                 # the flat subnet's: another CPE's pool, after a roam
])
def test_addresses_of_the_access_subnet_are_taken(client: httpx.Client, cpe1: FakeAgent,
                                                  ip: str) -> None:
    r = associate(client, "cpe1", ip)
    assert r.status_code == 202, r.text
    user = client.get(f"{API}/users/user1").json()
    assert (user["access_node"], user["mac"], user["ip"]) == ("cpe1", MAC, ip)


def test_a_portal_login_with_its_framed_ip_is_taken(client: httpx.Client,
                                                    live: LiveOrchestrator,
                                                    cpe1: FakeAgent) -> None:
    """The portal's association after Access-Accept gives the user's Framed-IP (RADIUS's
    pool, inside the testbed's access subnet, outside every DHCP pool): a login, at cpe1
    and, roaming, at cpe2 (fast re-authentication keeps the address)."""
    import ipaddress

    assert ipaddress.IPv4Address(FRAMED) in ipaddress.IPv4Network(SUBNET)
    r = associate(client, "cpe1", FRAMED, login=True, session_timeout=600)
    assert r.status_code == 202, r.text
    assert r.json()["acct_session_id"]
    cur = active_session(live)
    assert (cur.node_name, cur.ip) == ("cpe1", FRAMED)
    wait_until(lambda: any(u.authenticated and u.ip == FRAMED
                           for st in cpe1.switch_states for u in st.users),
               5, "user1 steered at cpe1 on their Framed-IP")


def test_a_node_with_no_known_access_subnet_is_checked_as_before(
        client: httpx.Client, make_agent: MakeAgent, cpe1: FakeAgent) -> None:
    """cpe2 reports no access services, core is a PE: no subnet is known for either, and
    any station's address goes, as before this check. cpe3's services lie outside the
    access subnet: only its own services address is refused."""
    make_agent("cpe2")
    make_agent("core", role="pe")
    other = addressing.cpe_access("cpe3", "192.168.1.1", "192.168.1.10", "192.168.1.250",
                                  24, "192.168.1.254")
    make_agent("cpe3", services=services(other))
    for node, ip in (("cpe2", "10.0.0.2"), ("core", "172.16.0.9"), ("cpe3", "10.0.0.3"),
                     ("cpe3", "192.168.1.20")):
        settled(client, associate(client, node, ip))
        assert client.get(f"{API}/users/user1").json()["ip"] == ip
    with unchanged(client):
        assert_problem(associate(client, "cpe3", "192.168.1.1"), 422, "192.168.1.1",
                       "access services", "cpe3")


def test_an_orchestrator_without_an_access_subnet_checks_as_before(
        make_live: MakeLive, tmp_path: Path) -> None:
    """probe_subnet empty: no access subnet known anywhere."""
    live = make_live(probe_subnet="", probe_gateway="")
    loop = LoopThread()
    agent = FakeAgent(loop, live.nats_url, "cpe1", services=services(CPE1))
    try:
        agent.start()
        with httpx.Client(base_url=live.url, timeout=15, headers=AUTH) as c:
            r = c.post(f"{API}/users", json={"name": "user1", "password": "secret1"})
            assert r.status_code == 201, r.text
            r = associate(c, "cpe1", "10.91.0.5")
            assert r.status_code == 202, r.text
            assert_problem(associate(c, "cpe1", CPE1.services_ip), 422, "access services")
    finally:
        agent.kill()
        loop.close()


def test_a_refusal_after_a_login_leaves_the_session_as_it_was(
        client: httpx.Client, live: LiveOrchestrator, cpe1: FakeAgent) -> None:
    settled(client, associate(client, "cpe1", FRAMED, login=True))
    before = active_session(live)
    with unchanged(client):
        assert_problem(associate(client, "cpe1", "10.91.0.5", login=True), 422, "10.91.0.5",
                       SUBNET)
    after = active_session(live)
    assert (after.id, after.acct_session_id, after.ip) == \
        (before.id, before.acct_session_id, FRAMED)


def test_the_cli_says_why(client: httpx.Client, cpe1: FakeAgent, cli_at_live: None) -> None:
    """`netfate users associate` with an address outside the subnet: exit 1, the reason."""
    from netfate.cli.main import app

    with unchanged(client):
        out = CliRunner().invoke(app, ["users", "associate", "user1", "cpe1",
                                       "--mac", MAC, "--ip", "10.91.0.5"])
    assert out.exit_code == 1, out.output
    assert "10.91.0.5" in out.output and SUBNET in out.output, out.output
    out = CliRunner().invoke(app, ["users", "associate", "user1", "cpe1",
                                   "--mac", MAC, "--ip", "10.90.1.1", "--json"])
    assert out.exit_code == 0, out.output
