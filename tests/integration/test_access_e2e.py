"""The access path end to end on the testbed (issue: SDN steering and user access): a client
gets a DHCP lease, is redirected to the captive portal, logs in through RADIUS, gets its
personal firewall steered by the SDN controller, and is released when idle. Real
namespaces, real dnsmasq, FreeRADIUS, os-ken and OVS, real traffic."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from netfate.access import dhcp_client, http
from netfate.access.addressing import plan
from netfate.api_auth import BearerAuth
from netfate.drivers import netns, node_files
from netfate.proc import netns_argv
from netfate.scenarios import vpn
from netfate.scenarios.vpn_gateway import Gateway
from netfate.testbed import lifecycle
from netfate.testbed.context import Testbed
from netfate.testbed.settings import TestbedSettings
from netfate.testbed.topology import load_topology

from .conftest import Server, echo_ok, tcp_connect
from .test_orchestrator import user_flows

INET = "10.255.0.1"
API = lifecycle.api_url() + "/api/v1"
AUTH = BearerAuth()  # the operator token of whichever testbed is up


def _get(url: str, **kw: Any) -> httpx.Response:
    return httpx.get(url, auth=AUTH, **kw)


def _post(url: str, **kw: Any) -> httpx.Response:
    return httpx.post(url, auth=AUTH, **kw)
C1, C2 = "fate-h-client1", "fate-h-client2"
IDLE_S = 4


@pytest.fixture(scope="module")
def access_stack(testbed_up: None) -> Iterator[Testbed]:
    topo = load_topology()
    lifecycle.down()
    try:
        lifecycle.up(topo, settings=TestbedSettings(idle_timeout=IDLE_S))
        with Testbed.attach() as tb:
            yield tb
    finally:
        lifecycle.down()
        lifecycle.up(topo, services=False)


def portal_ip(node: str) -> str:
    topo = load_topology()
    cpes = [n.name for n in topo.nodes if n.role == "cpe"]
    return plan(topo.subnet, topo.gateway, cpes)[node].services_ip


def add_user(name: str, password: str, rules: list[dict[str, Any]]) -> None:
    r = _post(f"{API}/users", json={"name": name, "password": password,
                                         "required_nfs": ["firewall"],
                                         "nf_config": {"firewall": {"rules": rules}}})
    assert r.status_code == 201, r.text


def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def connects(ns: str, port: int, timeout: float = 0.7, src: str | None = None) -> bool:
    s = netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        if src:
            s.bind((src, 0))
        s.connect((INET, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def login_and_renew(ns: str, node: str, user: str, password: str) -> str:
    dhcp_client.release(ns)
    lease = dhcp_client.lease(ns)
    assert lease.server == portal_ip(node)
    r = http.login(ns, portal_ip(node), user, password)
    assert r.status == 200, r.body
    ip = str(r.json()["ip"])
    if lease.ip != ip:  # the stable Framed-IP RADIUS gave: the static host entry hands it out
        assert dhcp_client.lease(ns, requested_ip=ip).ip == ip
    return ip


def fw_counters(tb: Testbed, node: str, iid: str) -> list[int]:
    return [r["packets"] for r in tb.node(node).compute.status(iid).detail["rules"]]


def test_dhcp_portal_radius_firewall_isolation_and_idle(access_stack: Testbed,
                                                        servers: list[Server]) -> None:
    tb = access_stack
    servers += [Server("fate-h-inet", INET, 5201), Server("fate-h-inet", INET, 2323)]
    add_user("user1", "user1-secret", [{"action": "allow", "proto": "tcp", "dport": 5201},
                                       {"action": "deny", "proto": "tcp", "dport": 2323}])
    add_user("user2", "user2-secret", [{"action": "allow", "proto": "tcp", "dport": 2323}])

    # 1. a DHCP lease from cpe1's pool; the web is redirected to the portal, nothing else
    dhcp_client.release(C1)
    lease = dhcp_client.lease(C1)
    assert lease.server == portal_ip("cpe1") and lease.router == "10.90.0.1"
    r = http.request(C1, INET, "GET", "/index.html", host="example.org")
    assert r.status == 302 and r.headers["location"].startswith(f"http://{portal_ip('cpe1')}/")
    assert not connects(C1, 5201), "an unauthenticated client reaches only the portal"

    # 6. a wrong password: a clear rejection, and nothing changes
    r = http.login(C1, portal_ip("cpe1"), "user1", "not-the-password")
    assert r.status == 401 and "wrong user name or password" in r.json()["error"]
    assert _get(f"{API}/vnf_instances").json() == []

    # 2-3. login: the firewall starts on cpe1, the user keeps a stable address
    ip1 = login_and_renew(C1, "cpe1", "user1", "user1-secret")
    wait_for(lambda: _get(f"{API}/vnf_instances/cpe1-user1-firewall").json().get(
        "actual_state") == "running", 15, "user1's firewall on cpe1")
    wait_for(lambda: connects(C1, 5201), 10, "user1's steering")

    # 4. allowed passes, denied drops, and the counters show both crossed the NF
    before = fw_counters(tb, "cpe1", "cpe1-user1-firewall")
    s = tcp_connect(C1, INET, 5201)
    assert s is not None and echo_ok(s)
    s.close()
    assert not connects(C1, 2323)
    after = fw_counters(tb, "cpe1", "cpe1-user1-firewall")
    assert after[0] > before[0] and after[1] > before[1], (before, after)

    # bad input: spoofed source address and MAC on the client port are dropped (checked while
    # user1 is active: user2's login below can outlast the 4 s idle timeout on a busy machine)
    subprocess.run(netns_argv(C1, ["ip", "addr", "add", "10.90.1.99/16", "dev", "eth0"]),
                   check=True)
    assert not connects(C1, 5201, src="10.90.1.99")
    assert connects(C1, 5201, src=ip1)
    subprocess.run(netns_argv(C1, ["ip", "addr", "del", "10.90.1.99/16", "dev", "eth0"]),
                   check=True)
    mac = tb.access("client1")[1]
    subprocess.run(netns_argv(C1, ["ip", "link", "set", "eth0", "address",
                                   "02:66:66:66:66:66"]), check=True)
    try:
        assert not connects(C1, 5201), "a spoofed MAC must not pass"
    finally:
        subprocess.run(netns_argv(C1, ["ip", "link", "set", "eth0", "address", mac]),
                       check=True)
    wait_for(lambda: connects(C1, 5201), 5, "user1 back with its own MAC")

    # 5. user2 on cpe2, own firewall; user1's rules never apply to user2
    ip2 = login_and_renew(C2, "cpe2", "user2", "user2-secret")
    assert ip2 != ip1
    wait_for(lambda: connects(C2, 2323), 10, "user2's steering")
    mid = fw_counters(tb, "cpe1", "cpe1-user1-firewall")
    assert connects(C2, 2323) and fw_counters(tb, "cpe1", "cpe1-user1-firewall") == mid

    # bad input: malformed portal POSTs change nothing
    for body, ctype in ((b"username=user1", "application/x-www-form-urlencoded"),
                        (b"\xff\xfe=\xff", "application/x-www-form-urlencoded"),
                        (b"username=user1&password=x" + b"x" * 8000,
                         "application/x-www-form-urlencoded"),
                        (b'{"username": "user1"}', "application/json")):
        r = http.request(C2, portal_ip("cpe2"), "POST", "/login", body=body,
                         headers={"Content-Type": ctype, "Accept": "application/json"})
        assert r.status in (400, 413, 415), (body[:40], r.status, r.body)
    # repeated wrong passwords are rate-limited per client MAC
    answers = [http.login(C2, portal_ip("cpe2"), "user2", f"wrong{i}") for i in range(7)]
    assert all(a.status in (401, 429) for a in answers)
    assert any("too many attempts" in a.json()["error"] for a in answers), \
        [a.body for a in answers]

    # 7. idle: no packets for the idle period -> firewall released, no flows for user1
    wait_for(lambda: _get(f"{API}/vnf_instances/cpe1-user1-firewall").status_code == 404,
             IDLE_S + 20, "user1's firewall to be released for idleness")
    wait_for(lambda: user_flows("fate-cpe1", "user1") == [], 10, "user1's flows to go")
    assert not connects(C1, 5201), "after release the client is behind the portal again"


def test_only_http_crosses_the_inspector_the_rest_the_firewall(access_stack: Testbed,
                                                               servers: list[Server]) -> None:
    tb = access_stack
    servers += [Server("fate-h-inet", INET, 80), Server("fate-h-inet", INET, 5201)]
    r = _post(f"{API}/users", json={
        "name": "user3", "password": "user3-secret",
        "required_nfs": ["firewall", "packet-inspector"],
        "nf_config": {"firewall": {"rules": [{"action": "allow", "proto": "tcp", "dport": 80},
                                             {"action": "allow", "proto": "tcp",
                                              "dport": 5201}]}},
        "classifiers": [{"name": "web", "priority": 100, "ip_proto": 6, "remote_port": 80,
                         "nfs": ["packet-inspector"]}]})
    assert r.status_code == 201, r.text
    login_and_renew(C1, "cpe1", "user3", "user3-secret")
    fw, pi = "cpe1-user3-firewall", "cpe1-user3-packet-inspector"
    wait_for(lambda: all(_get(f"{API}/vnf_instances/{i}").json().get("actual_state")
                         == "running" for i in (fw, pi)), 20, "user3's two NFs")
    wait_for(lambda: connects(C1, 5201), 10, "user3's steering")

    def inspected() -> int:  # TCP through the inspector (the NF's own chatter aside)
        return int(tb.node("cpe1").compute.status(pi).detail["protocols"]["tcp"]["packets"])

    fw0, pi0 = fw_counters(tb, "cpe1", fw), inspected()
    for _ in range(3):
        assert connects(C1, 80)
    wait_for(lambda: inspected() > pi0, 10, "the inspector to count user3's HTTP")
    assert fw_counters(tb, "cpe1", fw) == fw0, "HTTP must not cross the firewall"
    # the inspector writes its counters every so often: wait until they stop moving
    pi1, prev = inspected(), -1
    for _ in range(10):
        if pi1 == prev:
            break
        time.sleep(1.5)
        pi1, prev = inspected(), pi1
    for _ in range(3):
        assert connects(C1, 5201)
    assert fw_counters(tb, "cpe1", fw)[1] > fw0[1], "other traffic crosses the firewall"
    time.sleep(3)
    assert inspected() == pi1, "other traffic must not cross the inspector"


def test_a_login_whose_nf_refuses_its_configuration_is_not_reported_logged_in(
        access_stack: Testbed) -> None:
    """The portal answers once the user's NFs are up: a VPN whose key file is not on the
    node exits EX_CONFIG, its INSTANTIATE is recorded as the configuration's fault (422, not
    500), and the portal says so with 409 instead of "logged in" (probe of 2026-12-06)."""
    topo = load_topology()
    host = topo.host("client1")  # client2's MAC backs off after the wrong passwords above
    psk = f"{node_files.owner_dir('user9')}/psk"
    r = _post(f"{API}/users", json={
        "name": "user9", "password": "user9-secret", "required_nfs": ["vpn"],
        "nf_config": {"vpn": {"address": vpn.VPN_ADDR, "gateway": topo.gateway,
                              "peer": Gateway.address, "local_ts": [vpn.USER_LAN],
                              "psk_file": psk}}})
    assert r.status_code == 201, r.text
    dhcp_client.release(C1)
    dhcp_client.lease(C1)
    r = http.login(C1, portal_ip(host.attach), "user9", "user9-secret")
    assert r.status == 409, r.body
    error = str(r.json()["error"])
    assert "psk_file" in error and psk in error and "configuration" in error, error
    ops = _get(f"{API}/vnf_lcm_op_occs").json()
    mine = [o for o in ops if o["vnf_instance_id"] == f"{host.attach}-user9-vpn"]
    assert mine and all(o["error"]["status"] == 422 for o in mine), mine
    # Not steered, so captive on every channel: a site is redirected to the login page,
    # not answered "You are online, your connection is being set up".
    time.sleep(1.2)  # the access services' view of the platform is at most 1 s old
    r = http.request(C1, INET, "GET", "/index.html", host="example.org")
    assert r.status == 302 and "/login" in r.headers.get("location", ""), r
    assert _post(f"{API}/users/user9/logout").status_code == 202
