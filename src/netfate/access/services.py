"""A CPE's access services: namespace, dnsmasq and captive portal, up and down together.

    svc = AccessServices(cpe, bridge="fate-cpe1", state_dir=..., radius_client=...,
                         api_url="http://127.0.0.1:8181")
    svc.up()      # fate-s-<node>, its veth on the bridge, nft redirect, dnsmasq, portal
                  # (http on 80; with tls=(cert, key), the CAPPORT API on https 443)
    ...
    svc.down()    # idempotent; cleanup(node, state_dir) does the same for a crashed process

The namespace holds only eth0 (services MAC and address), dnsmasq and the portal's listening
socket; the portal itself runs in this process, in the root namespace, so it reaches RADIUS
and the orchestrator on 127.0.0.1. The CPE's switch rewrites the destination MAC of an
unauthenticated client's HTTP to the services MAC; the nat rule below turns any destination
address into ours, and conntrack un-NATs the replies so the browser sees the site's address.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import httpx

from netfate.access import captive_dns, dhcp_release, local_zone, setup_wait
from netfate.access.addressing import (
    CAPTIVE_DNS_PORT,
    CpeAccess,
    capport_url,
    dns_records,
    services_host_if,
    services_netns,
    user_portal_url,
)
from netfate.access.captive_dns import CaptiveDns
from netfate.access.dnsmasq import Dnsmasq, stop_recorded
from netfate.access.dnsmasq_process import check_state_dir as _check_dir
from netfate.access.dnsmasq_process import process_files
from netfate.access.portal import AcceptError, WindowLimiter, create_portal_app
from netfate.access.portal_server import PortalServer, listen_socket
from netfate.access.tls import HTTPS_PORT, server_context
from netfate.drivers import netns
from netfate.errors import DriverError, NetfateError
from netfate.proc import run

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from netfate.drivers.ovs import OvsNetwork
    from netfate.radius.client import AuthResult, RadiusClient

log = logging.getLogger("netfate.access")

INNER_IF = "eth0"
NFT_TABLE = "netfate_access"
# What the state dir holds (access.dnsmasq, access.captive_dns).
STATE_FILES = (*process_files("dnsmasq"), *process_files("captive-dns"), "dhcp-hosts",
               "leases")


def check_state_dir(state_dir: Path) -> None:
    """InvalidInput naming the path unless `state_dir` is usable: absent or a directory,
    its files regular (dnsmasq_process.check_state_dir)."""
    _check_dir(state_dir, STATE_FILES)


class BridgeAttach(Protocol):
    """Puts the services veth's host end on the CPE's switch (and takes it off)."""

    def attach(self, bridge: str, port: str, external_ids: dict[str, str]) -> None: ...

    def detach(self, bridge: str, port: str) -> None: ...


class OvsAttach:
    """BridgeAttach on the testbed's Open vSwitch (its OVSDB in paths.ovs_dir())."""

    def __init__(self, network: OvsNetwork | None = None) -> None:
        self._net = network

    def _network(self) -> OvsNetwork:
        if self._net is None:
            from netfate import paths
            from netfate.drivers.ovs import OvsNetwork, OvsServer

            self._net = OvsNetwork(OvsServer(paths.ovs_dir()))
        return self._net

    def attach(self, bridge: str, port: str, external_ids: dict[str, str]) -> None:
        self._network().create_ports(bridge, [(port, None)], external_ids={port: external_ids})

    def detach(self, bridge: str, port: str) -> None:
        self._network().delete_ports(bridge, [port])

    def close(self) -> None:
        if self._net is not None:
            self._net.close()
            self._net = None


def nft_ruleset(portal_port: int, ifname: str = INNER_IF,
                captive_dns_port: int = CAPTIVE_DNS_PORT) -> str:
    """TCP to port 80 of any address, arriving on ifname, goes to the portal; DNS the switch
    marked as captive (its port), to any address, goes to the captive resolver. The
    add/delete pair first makes it idempotent (a missing table cannot be deleted)."""
    return (
        f"add table ip {NFT_TABLE}\n"
        f"delete table ip {NFT_TABLE}\n"
        f"table ip {NFT_TABLE} {{\n"
        "  chain prerouting {\n"
        "    type nat hook prerouting priority dstnat; policy accept;\n"
        f'    iifname "{ifname}" tcp dport 80 redirect to :{portal_port}\n'
        f'    iifname "{ifname}" udp dport {captive_dns_port} redirect to :{captive_dns_port}\n'
        f'    iifname "{ifname}" tcp dport {captive_dns_port} redirect to :{captive_dns_port}\n'
        "  }\n"
        "}\n"
    )


class AccessServices:
    """One CPE's access services. ``bridge`` None leaves the host end of the veth unattached
    (tests wire it themselves); ``attach`` (default OvsAttach) puts it on the bridge.
    ``radius_client`` None: every login is answered "authentication service unavailable".

    ``local_records``: the operator's local zone (name -> IPv4), answered for real by both
    resolvers (access/local_zone.py). ``tls``: (certificate, key) PEM paths: the captive
    portal API is served on https port ``https_port`` and announced in DHCP option 114;
    None: no API and no option 114. InvalidInput at construction, before anything starts,
    for a missing, unreadable or mismatched certificate and key, or a bad record."""

    def __init__(
        self,
        cpe: CpeAccess,
        bridge: str | None,
        state_dir: Path,
        radius_client: RadiusClient | None,
        api_url: str,
        *,
        attach: BridgeAttach | None = None,
        portal_port: int = 80,
        records: Mapping[str, str] | None = None,
        internet_address: str = "10.255.0.1",
        mtu: int | None = None,
        api_timeout: float = 15.0,
        limiter: WindowLimiter | None = None,
        api_auth: httpx.Auth | None = None,
        prelogin_lease: str = "2m",
        host_lease: str = "1h",
        local_records: Mapping[str, str] | None = None,
        tls: tuple[Path, Path] | None = None,
        https_port: int = HTTPS_PORT,
    ) -> None:
        self.cpe = cpe
        self.bridge = bridge
        self.state_dir = Path(state_dir)
        self.radius = radius_client
        self.api_url = api_url.rstrip("/")
        self._attach = attach
        self.portal_port = portal_port
        self.mtu = mtu
        self.netns = services_netns(cpe.node)
        self.host_if = services_host_if(cpe.node)
        self.tls = (Path(tls[0]), Path(tls[1])) if tls is not None else None
        if self.tls is not None:
            server_context(*self.tls)  # bad files: a clear error now, not in a thread later
        self.https_port = https_port
        platform = records if records is not None else dns_records(cpe, internet_address)
        names = local_zone.zone(platform, local_records or {})
        # Both resolvers answer the local zone the same. After login: and (the sealed
        # testbed's internet) every other name is the internet host. Before login: the
        # captive resolver, every other name the portal (TTL 0).
        api = capport_url() if self.tls is not None else None
        self.dnsmasq = Dnsmasq(
            self.netns, cpe, self.state_dir, interface=INNER_IF, records=names,
            other_names=internet_address, lease_time=prelogin_lease,
            host_lease_time=host_lease, capport_url=api,
        )
        self.captive_dns = CaptiveDns(self.netns, cpe.services_ip, self.state_dir,
                                      interface=INNER_IF, records=names)
        # The orchestrator's operator token (netfate.api_auth.BearerAuth).
        self._auth = api_auth
        self._http = httpx.Client(timeout=api_timeout, auth=api_auth)
        self._hosts_lock = threading.Lock()
        # The last Access-Accept's limits per (user, MAC), for on_accept to hand on to the
        # orchestrator with the login (the portal passes on_accept no AuthResult).
        self._accepts: dict[tuple[str, str], tuple[int | None, int | None]] = {}
        self._portal: PortalServer | None = None
        self._portal_tls: PortalServer | None = None
        self._users_cache: tuple[float, list[dict[str, Any]]] = (0.0, [])
        self._steered_cache: tuple[float, set[str]] = (0.0, set())
        self.app: Starlette = create_portal_app(
            cpe.node, cpe.services_ip, self.authenticate, self.on_accept, self.dnsmasq.mac_for,
            limiter=limiter, logged_in=self.logged_in, capport_api_url=api,
            portal_url=user_portal_url() if api else None,
        )

    # -- the portal's callables ---------------------------------------------------------------
    def authenticate(self, user: str, password: str, mac: str) -> AuthResult:
        from netfate.radius.client import RadiusError

        if self.radius is None:
            raise RadiusError("no RADIUS client configured")
        result = self.radius.authenticate(user, password, mac=mac, nas_id=self.cpe.node)
        if result.accepted:
            with self._hosts_lock:
                if len(self._accepts) >= 1024:  # bounded: a login's entry is used at once
                    self._accepts.pop(next(iter(self._accepts)))
                self._accepts[(user, mac)] = (result.session_timeout, result.idle_timeout)
        return result

    def on_accept(self, user: str, mac: str, client_ip: str, framed_ip: str | None) -> None:
        """The user keeps framed_ip: a static DHCP host for their MAC (the latest login of
        that address wins), then the orchestrator places their NFs and steering here."""
        if framed_ip:
            try:
                with self._hosts_lock:
                    cur = self.dnsmasq.hosts()
                    former = {m for m, ip in cur.items() if ip == framed_ip and m != mac}
                    hosts = {m: ip for m, ip in cur.items() if ip != framed_ip and m != mac}
                    hosts[mac] = framed_ip
                    self.dnsmasq.set_hosts(hosts)
            except (NetfateError, OSError) as exc:
                raise AcceptError(f"cannot reserve {framed_ip} for {mac}: {exc}") from exc
            self._release_former(mac, framed_ip, former)
        url = f"{self.api_url}/api/v1/users/{quote(user, safe='')}/associate"
        body: dict[str, Any] = {"node": self.cpe.node, "mac": mac, "ip": framed_ip or client_ip}
        with self._hosts_lock:
            limits = self._accepts.pop((user, mac), None)
        if limits is not None:
            # A login: the orchestrator starts its accounting session, with these limits
            # (RFC 2865 Session-Timeout, Idle-Timeout) from the Access-Accept.
            body["login"] = True
            for key, value in zip(("session_timeout", "idle_timeout"), limits, strict=True):
                if value is not None:
                    body[key] = value
        try:
            r = self._http.post(url, json=body)
        except httpx.HTTPError as exc:
            raise AcceptError(f"the orchestrator at {self.api_url} is unreachable: {exc}") from exc
        if not r.is_success:
            # 422: the association itself cannot work (an address no device here can have):
            # trying again cannot help. Anything else (429 overload, 5xx) may.
            raise AcceptError(f"the orchestrator answered {r.status_code}: {_detail(r)}",
                              config_fault=r.status_code == 422)
        try:
            accepted = r.json()
        except ValueError:
            accepted = None
        if isinstance(accepted, dict):
            log.info("%s at %s (%s): accounting session %s", user, self.cpe.node, mac,
                     accepted.get("acct_session_id"))
        # Answer once the user's NFs are up (or failed), not at the 202: a login whose
        # NFs cannot start is not a success (setup_wait).
        setup_wait.wait_for_ops(self._http, self.api_url, setup_wait.op_ids(accepted))

    def _release_former(self, mac: str, framed_ip: str, former: set[str]) -> None:
        """The user's stable address was another MAC's (the same device before it changed
        its MAC, or a device they left): every lease of those MACs, and any other MAC's
        lease of the stable address, ends now, so nothing of the old MAC stays and the
        address is free for ``mac`` at its next renewal. Best effort: logged."""
        try:
            text = self.dnsmasq.leasefile.read_text()
        except OSError:
            return
        for m, ip, clid in dhcp_release.lease_entries(text):
            if m != mac and (m in former or ip == framed_ip):
                try:
                    dhcp_release.release(self.netns, INNER_IF, self.cpe.services_ip, m, ip,
                                         clid)
                    log.info("released %s's lease of %s (%s logged in as its user)", m, ip,
                             mac)
                except (NetfateError, ValueError) as exc:
                    log.warning("cannot release %s's lease of %s: %s", m, ip, exc)

    def _users(self, max_age: float = 1.0) -> list[dict[str, Any]]:
        """The orchestrator's users, at most max_age seconds old. httpx.HTTPError if it
        cannot be read."""
        at, users = self._users_cache
        if time.monotonic() - at > max_age:
            r = self._http.get(f"{self.api_url}/api/v1/users", timeout=2)
            r.raise_for_status()
            users = list(r.json())
            self._users_cache = (time.monotonic(), users)
        return users

    def logged_in(self, mac: str) -> bool:
        """Whether the device ``mac`` is online at this CPE: the platform holds its user's
        session here and steers them here (their steering rule installed). A session whose
        NFs could not start has no steering: its device is captive, and the portal says so
        (RFC 8908 API, OS probes), not "online" (probe of 2026-12-06)."""
        mac = mac.lower()
        users = [str(u.get("name")) for u in self._users()
                 if str(u.get("mac") or "").lower() == mac
                 and u.get("access_node") == self.cpe.node]
        return bool(users) and any(u in self._steered() for u in users)

    def _steered(self, max_age: float = 1.0) -> set[str]:
        """The users whose steering at this CPE is installed, at most max_age seconds old.
        httpx.HTTPError if it cannot be read."""
        at, names = self._steered_cache
        if time.monotonic() - at > max_age:
            r = self._http.get(f"{self.api_url}/api/v1/steering_rules",
                               params={"node": self.cpe.node}, timeout=2)
            r.raise_for_status()
            names = {str(x.get("user_name")) for x in r.json()
                     if isinstance(x, dict) and x.get("desired") and x.get("installed")}
            self._steered_cache = (time.monotonic(), names)
        return names

    def sync_bindings(self) -> bool:
        """Every logged-in user's stable address for their device, from the orchestrator,
        as static DHCP hosts here too: a device that roams to this CPE and renews keeps its
        address. Returns whether the hosts changed. Raises DriverError when the orchestrator
        cannot be read (the hosts are then left as they are)."""
        try:
            r = self._http.get(f"{self.api_url}/api/v1/users", timeout=2)
        except httpx.HTTPError as exc:
            raise DriverError(f"cannot read the users from {self.api_url}: {exc}") from exc
        if not r.is_success:
            raise DriverError(f"reading the users from {self.api_url}: HTTP {r.status_code}: "
                              f"{_detail(r)}")
        want = {str(u["mac"]).lower(): str(u["framed_ip"]) for u in r.json()
                if u.get("mac") and u.get("framed_ip") and u.get("access_node")}
        with self._hosts_lock:
            cur = self.dnsmasq.hosts()
            taken = set(want.values())
            merged = {m: ip for m, ip in cur.items() if m not in want and ip not in taken}
            merged.update(want)
            if merged == cur:
                return False
            self.dnsmasq.set_hosts(merged)
        return True

    # -- lifecycle ------------------------------------------------------------------------------
    def up(self, timeout: float = 10.0) -> None:
        """Create everything; on failure, remove what was made and raise."""
        try:
            self._up(timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                self.down()
            raise

    def _up(self, timeout: float) -> None:
        c = self.cpe
        if self._http.is_closed:
            self._http = httpx.Client(timeout=self._http.timeout, auth=self._auth)
        check_state_dir(self.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        netns.create(self.netns)
        netns.disable_ipv6(self.netns)  # no router solicitations or DAD from the services
        netns.veth_into(self.host_if, self.netns, INNER_IF, mac=c.services_mac, mtu=self.mtu)
        # tx checksum off (configure_inside's default): unicast DHCP replies and TCP through
        # the OVS netdev datapath need it.
        netns.configure_inside(self.netns, INNER_IF, addresses=[c.services_cidr])
        run(["nft", "-f", "-"], netns=self.netns,
            input=nft_ruleset(self.portal_port, captive_dns_port=self.captive_dns.port).encode())
        if self.bridge is not None:
            ids = {"netfate-kind": "services", "attached-mac": c.services_mac,
                   "netfate-ip": c.services_ip}
            self._attacher().attach(self.bridge, self.host_if, ids)
        self.dnsmasq.start(timeout)
        self.captive_dns.start(timeout)
        sock = listen_socket(self.netns, self.portal_port)
        self._portal = PortalServer(self.app, sock)
        self._portal.start(timeout)
        if self.tls is not None:
            sock = listen_socket(self.netns, self.https_port)
            self._portal_tls = PortalServer(self.app, sock, tls=self.tls)
            self._portal_tls.start(timeout)
        log.info("access services of %s up: %s (%s) in %s, portal on port %d%s", c.node,
                 c.services_ip, c.services_mac, self.netns, self.portal_port,
                 f", captive portal API on https port {self.https_port}" if self.tls else "")

    def _attacher(self) -> BridgeAttach:
        if self._attach is None:
            self._attach = OvsAttach()
        return self._attach

    def down(self) -> None:
        """Remove everything up() made; idempotent. Errors are logged, not raised, so one
        failing step does not leave the rest behind."""
        for server in (self._portal, self._portal_tls):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()
        self._portal = self._portal_tls = None
        with contextlib.suppress(Exception):
            self.dnsmasq.stop()
        with contextlib.suppress(Exception):
            self.captive_dns.stop()
        if self.bridge is not None:
            try:
                self._attacher().detach(self.bridge, self.host_if)
            except Exception as exc:  # the bridge may be gone already (testbed down)
                log.warning("cannot detach %s from %s: %s", self.host_if, self.bridge, exc)
            if isinstance(self._attach, OvsAttach):
                with contextlib.suppress(Exception):
                    self._attach.close()
                self._attach = None
        _remove_net(self.netns, self.host_if)
        self._http.close()

    def __enter__(self) -> AccessServices:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()


def _remove_net(ns: str, host_if: str) -> tuple[bool, bool]:
    """(veth deleted, namespace deleted)."""
    # The veth first: `ip netns del` returns before the namespace (and its links) are gone,
    # and a quick re-up would then find the name taken.
    link = False
    with contextlib.suppress(Exception):
        link = netns.delete_link(host_if)
    return link, netns.delete(ns)


def cleanup(node: str, state_dir: Path) -> dict[str, Any]:
    """Remove a node's access services left by a process that died without down(): its
    dnsmasq (by the PID recorded in <state_dir>/dnsmasq.pid), veth and namespace. OVS keeps
    the port's row on the bridge; the testbed's down removes bridges whole. InvalidInput
    naming the path, before anything is done, if `state_dir` is not a usable one."""
    check_state_dir(state_dir)
    pid = stop_recorded(state_dir)
    captive_dns.stop_recorded(state_dir)
    host_if, ns = services_host_if(node), services_netns(node)
    link, gone = _remove_net(ns, host_if)
    return {"dnsmasq_pid": pid, "link": host_if if link else None,
            "namespace": ns if gone else None}


def _detail(r: httpx.Response) -> str:
    try:
        data = r.json()
    except ValueError:
        return r.text[:200] or r.reason_phrase
    if isinstance(data, dict):
        for key in ("detail", "title", "error", "message"):
            if data.get(key):
                return str(data[key])[:200]
    return str(data)[:200]
