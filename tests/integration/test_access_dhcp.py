"""A CPE's access services for real, without OVS: the services namespace made by
AccessServices, whose veth goes straight into a client namespace (a fake bridge attachment),
so the two are joined by one plain veth pair. dnsmasq leases, static hosts, DNS, the portal
and the nft redirect, seen from the client."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import secrets
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from netfate import naming
from netfate.access import dhcp_client
from netfate.access.addressing import for_index
from netfate.access.dnsmasq import Dnsmasq, dns_query
from netfate.access.services import AccessServices
from netfate.drivers import netns
from netfate.errors import DriverError
from netfate.proc import alive, run
from netfate.radius.client import AuthResult
from netfate.supervisor import read_record
from netfate.testbed.tls import portal_pki

pytestmark = pytest.mark.root

CLIENT_MAC = "02:fd:00:00:00:01"
FRAMED = "10.90.100.7"
PORTAL_PORT = 8080  # not 80: the nft redirect must carry port 80 to it


class FakeRadius:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def authenticate(self, user: str, password: str, mac: str | None = None,
                     nas_id: str | None = None) -> AuthResult:
        self.calls.append({"user": user, "mac": mac, "nas_id": nas_id})
        if password != "pw1":
            return AuthResult(False, None, "wrong password", None)
        return AuthResult(True, FRAMED, "", None)


@dataclass
class FakeOrchestrator:
    """POST /api/v1/users/<u>/associate on 127.0.0.1, recorded, answered 202."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        calls = self.calls

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                calls.append((self.path, json.loads(body)))
                self.send_response(202)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class IntoClient:
    """The bridge attachment, faked: the services veth's host end moves into the client
    namespace as its eth0, making one veth pair between the two namespaces."""

    def __init__(self, client_ns: str) -> None:
        self.client_ns = client_ns
        self.ids: dict[str, str] = {}

    def attach(self, bridge: str, port: str, external_ids: dict[str, str]) -> None:
        self.ids = external_ids
        with netns.iproute() as ipr:
            idx = netns.link_index(ipr, port)
            ipr.link("set", index=idx, net_ns_fd=self.client_ns)
        with netns.iproute(self.client_ns) as ipr:
            idx = netns.link_index(ipr, port)
            ipr.link("set", index=idx, ifname="eth0", address=CLIENT_MAC)
        netns.configure_inside(self.client_ns, "eth0")

    def detach(self, bridge: str, port: str) -> None:
        with contextlib.suppress(Exception), netns.iproute(self.client_ns) as ipr:
            idx = netns.link_index(ipr, "eth0")
            if idx is not None:
                ipr.link("del", index=idx)


@dataclass
class Setup:
    svc: AccessServices
    client_ns: str
    radius: FakeRadius
    orch: FakeOrchestrator
    attach: IntoClient


def _ours(sfx: str) -> list[str]:
    return [n for n in netns.list_names() + netns.list_links(naming.PREFIX) if sfx in n]


@pytest.fixture
def setup() -> Iterator[Setup]:
    sfx = secrets.token_hex(2)
    node = f"tdhs{sfx}"  # services namespace fate-s-tdhs<sfx>
    client_ns = f"{naming.PREFIX}tdhc{sfx}"
    state = Path(tempfile.mkdtemp(prefix=f"{naming.PREFIX}tdh{sfx}-"))
    cpe = for_index("10.90.0.0/16", "10.90.0.1", node, 0)
    radius, orch = FakeRadius(), FakeOrchestrator()
    attach = IntoClient(client_ns)
    pki = portal_pki(state / "tls")  # the CAPPORT API is https only: a certificate
    svc = AccessServices(cpe, "fake-bridge", state, radius, orch.url,  # type: ignore[arg-type]
                         attach=attach, portal_port=PORTAL_PORT, tls=(pki.cert, pki.key))
    try:
        netns.create(client_ns)
        netns.disable_ipv6(client_ns)
        svc.up()
        yield Setup(svc, client_ns, radius, orch, attach)
    finally:
        pid = svc.dnsmasq.pid
        svc.down()
        with contextlib.suppress(Exception), netns.iproute(client_ns) as ipr:
            for link in ipr.get_links():
                if link.get("ifname") != "lo":
                    ipr.link("del", index=link["index"])
        netns.delete(client_ns)
        orch.close()
        shutil.rmtree(state, ignore_errors=True)
        assert pid is None or not alive(pid), "dnsmasq outlived down()"
        assert _ours(sfx) == [], "left behind"


def http(ns: str, ip: str, port: int, method: str, path: str, host: str,
         body: bytes = b"", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str],
                                                                           bytes]:
    """One HTTP/1.1 exchange over a TCP connection made inside ns."""
    s = netns.tcp_connect(ns, ip, port, timeout=3.0)
    assert s is not None, f"no TCP connection from {ns} to {ip}:{port}"
    with s:
        s.settimeout(5.0)
        hdrs = {"Host": host, "Connection": "close", "Content-Length": str(len(body)),
                **(headers or {})}
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in
                                                         hdrs.items()) + "\r\n"
        s.sendall(head.encode() + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    raw_head, _, payload = data.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    got = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    return status, got, payload


def test_lease_static_host_dns_portal_and_redirect(setup: Setup) -> None:
    svc, cns = setup.svc, setup.client_ns
    c = svc.cpe
    assert setup.attach.ids == {"netfate-kind": "services", "attached-mac": c.services_mac,
                                "netfate-ip": c.services_ip}
    rec = read_record(svc.dnsmasq.pidfile)
    assert rec is not None and rec.pid == svc.dnsmasq.pid

    # A lease from the pool, applied in the client namespace.
    t0 = time.monotonic()
    first = dhcp_client.lease(cns, timeout=3.0)
    took = time.monotonic() - t0
    print(f"lease {first} in {took * 1000:.0f} ms")
    assert took < 2.0
    ip = ipaddress.IPv4Address
    assert ip(c.pool_start) <= ip(first.ip) <= ip(c.pool_end)
    assert first.ip.startswith("10.90.16.")
    assert first.prefixlen == 16 and first.router == c.router
    assert first.dns == (c.services_ip,) and first.server == c.services_ip
    # Pre-login leases are short (the device takes its stable address soon after login);
    # DHCP option 114 announces the captive portal API (RFC 8910).
    assert first.lease_time == 120
    assert first.capport == "https://portal.netfate/capport/api"
    addrs = run(["ip", "-4", "-o", "addr", "show", "dev", "eth0"], netns=cns).stdout.decode()
    assert f"{first.ip}/16" in addrs
    assert svc.dnsmasq.leases() == {CLIENT_MAC: first.ip}
    assert svc.dnsmasq.mac_for(first.ip) == CLIENT_MAC and svc.dnsmasq.mac_for("1.2.3.4") is None

    # DNS after login: the platform's names, and every other name is the (sealed testbed's)
    # internet host.
    assert dns_query(cns, c.services_ip, "portal.netfate") == [c.services_ip]
    assert dns_query(cns, c.services_ip, "inet.netfate") == ["10.255.0.1"]
    assert dns_query(cns, c.services_ip, "nope.netfate") == []
    assert dns_query(cns, c.services_ip, "example.com") == ["10.255.0.1"]
    # The captive resolver (where the switch sends DNS before login): names outside the
    # local zone are the portal, and it is reached whatever address the query was for (the
    # nft redirect); the local zone gets its real answers, as after login.
    for name in ("example.com", "connectivitycheck.gstatic.com", "captive.apple.com",
                 "www.msftconnecttest.com", "x" * 40 + ".tunnel.example"):
        assert dns_query(cns, c.services_ip, name, port=5353) == [c.services_ip], name
    assert dns_query(cns, c.services_ip, "portal.netfate", port=5353) == [c.services_ip]
    assert dns_query(cns, c.services_ip, "inet.netfate", port=5353) == ["10.255.0.1"]
    assert dns_query(cns, c.services_ip, "nope.netfate", port=5353) == []

    # The portal itself, directly (port 80 reaches it through the redirect too).
    for port in (PORTAL_PORT, 80):
        status, _, body = http(cns, c.services_ip, port, "GET", "/login", c.services_ip)
        assert status == 200 and b'name="password"' in body

    # The captive portal API, over TLS only (RFC 8908 section 3), verified against the CA
    # for the portal's name; the device has a lease and no login: captive.
    assert svc.tls is not None
    ctx = ssl.create_default_context(cafile=str(svc.tls[0].parent / "ca.pem"))
    with netns.socket_in(cns, socket.AF_INET, socket.SOCK_STREAM) as raw:
        raw.settimeout(5)
        raw.connect((c.services_ip, 443))
        with ctx.wrap_socket(raw, server_hostname="portal.netfate") as tls:
            tls.sendall(b"GET /capport/api HTTP/1.1\r\nHost: portal.netfate\r\n"
                        b"Accept: application/captive+json\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := tls.recv(4096):
                data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    assert b'"captive":true' in data and b"https://portal.netfate/login" in data

    # HTTP to any site, routed to the services MAC, is answered by the portal: 302.
    run(["ip", "route", "replace", "default", "via", c.services_ip], netns=cns)
    status, headers, _ = http(cns, "10.255.0.1", 80, "GET", "/news", "inet.example")
    assert status == 302
    assert headers["location"].startswith(f"http://{c.services_ip}/login?next=http")

    # A wrong password: 401 with RADIUS's reason; nothing set up.
    form = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    status, _, body = http(cns, c.services_ip, 80, "POST", "/login", c.services_ip,
                           b"username=alice&password=nope", form)
    assert status == 401 and json.loads(body)["error"] == "wrong password"
    assert setup.orch.calls == [] and svc.dnsmasq.hosts() == {}
    assert setup.radius.calls[-1] == {"user": "alice", "mac": CLIENT_MAC,
                                      "nas_id": c.node}

    # Login: a static host for the client's MAC, and the orchestrator told.
    status, _, body = http(cns, c.services_ip, 80, "POST", "/login", c.services_ip,
                           b"username=alice&password=pw1", form)
    assert status == 200, body
    answer = json.loads(body)
    assert {k: answer[k] for k in ("ok", "user", "ip", "node", "mac", "renew")} == {
        "ok": True, "user": "alice", "ip": FRAMED, "node": c.node, "mac": CLIENT_MAC,
        "renew": False}
    assert setup.orch.calls == [("/api/v1/users/alice/associate",
                                 {"node": c.node, "mac": CLIENT_MAC, "ip": FRAMED,
                                  "login": True})]
    assert svc.dnsmasq.hosts() == {CLIENT_MAC: FRAMED}

    # Renewal (asking for the old address) brings the Framed-IP, flushing the old one.
    renewed = dhcp_client.lease(cns, timeout=3.0, requested_ip=first.ip)
    assert renewed.ip == FRAMED
    addrs = run(["ip", "-4", "-o", "addr", "show", "dev", "eth0"], netns=cns).stdout.decode()
    assert f"{FRAMED}/16" in addrs and first.ip not in addrs
    assert svc.dnsmasq.leases()[CLIENT_MAC] == FRAMED
    # The stable address is leased for long; a new client-id on the same device keeps it.
    assert renewed.lease_time == 3600
    again = dhcp_client.lease(cns, timeout=3.0, client_id=b"\xffnew-client-id")
    assert again.ip == FRAMED, again

    dhcp_client.release(cns)
    addrs = run(["ip", "-4", "-o", "addr", "show", "dev", "eth0"], netns=cns).stdout.decode()
    assert "inet " not in addrs


def test_set_hosts_replaces_and_validates(setup: Setup) -> None:
    d = setup.svc.dnsmasq
    d.set_hosts({"02:FD:00:00:00:01": "10.90.100.8", "02:fd:00:00:00:02": "10.90.100.9"})
    assert d.hosts() == {"02:fd:00:00:00:01": "10.90.100.8", "02:fd:00:00:00:02": "10.90.100.9"}
    assert dhcp_client.lease(setup.client_ns, timeout=3.0).ip == "10.90.100.8"
    from netfate.errors import InvalidInput

    for bad in ({"nope": "10.90.100.8"}, {"02:fd:00:00:00:01": "10.90.100.300"},
                {"03:fd:00:00:00:01": "10.90.100.8"},
                {"02:fd:00:00:00:01": "10.90.100.8", "02:fd:00:00:00:02": "10.90.100.8"}):
        with pytest.raises(InvalidInput):
            d.set_hosts(bad)
    assert d.running()


def test_second_dnsmasq_in_the_namespace_fails_with_its_log(setup: Setup) -> None:
    """Its readiness is its own sockets: the first dnsmasq answering must not fool it."""
    svc = setup.svc
    state = Path(tempfile.mkdtemp(prefix=f"{naming.PREFIX}tdh2-"))
    other = Dnsmasq(svc.netns, svc.cpe, state)
    try:
        with pytest.raises(DriverError, match=r"exited \(\d+\) while starting:\n"
                                              r"(.|\n)*Address already in use"):
            other.start(timeout=3.0)
        assert other.pid is None and not other.pidfile.exists()
    finally:
        other.stop()
        shutil.rmtree(state, ignore_errors=True)
    assert svc.dnsmasq.running()


def test_no_server_no_lease_names_the_namespace() -> None:
    sfx = secrets.token_hex(2)
    ns, host_if = f"{naming.PREFIX}tdhn{sfx}", f"{naming.PREFIX}tdhn{sfx}"
    try:
        netns.create(ns)
        netns.veth_into(host_if, ns, "eth0")
        netns.configure_inside(ns, "eth0")
        t0 = time.monotonic()
        with pytest.raises(DriverError, match=f"DHCP in {ns} on eth0: no lease within 1 s"):
            dhcp_client.lease(ns, timeout=1.0)
        assert time.monotonic() - t0 < 4.0
    finally:
        netns.delete_link(host_if)
        netns.delete(ns)
    with pytest.raises(DriverError, match="does not exist"):
        dhcp_client.lease(ns, timeout=1.0)
