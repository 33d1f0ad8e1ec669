"""One dnsmasq per CPE, inside its services namespace: DHCP for the CPE's clients and a tiny
DNS that knows only the platform's own names.

Files, all in the state dir:
  dnsmasq.pid     the supervisor's record of its PID (dnsmasq writes none), so a crashed
                  parent's dnsmasq can be ended by PID: stop_recorded(state_dir)
  dhcp-hosts      static `mac,ip` lines: authenticated users' Framed-IPs (SIGHUP re-reads it)
  leases          the leases, rewritten by dnsmasq on every change (the node's agent reads
                  it too: netfate.agent.ports.leases_file)
  dnsmasq.log     its log (--log-dhcp: every exchange); dnsmasq.out: its stdout/stderr

Behaviour that matters (measured with dnsmasq 2.90 and busybox udhcpc):
- --no-ping: before offering a new address dnsmasq pings it; the ping leaves an INCOMPLETE
  neighbour entry for the address, and the unicast DHCPOFFER then waits on ARP that the
  address-less client never answers, so the first lease of every new MAC failed.
- --user=root: dnsmasq would otherwise switch to the `dnsmasq` user, and the state dir
  (lease file rewrites, hosts file re-read on SIGHUP) is root's.
- --conf-file=/dev/null and an empty --pid-file: never read /etc/dnsmasq.conf nor touch
  /run/dnsmasq; the host's own dnsmasq, if any, is not ours.
- DHCP replies are unicast with a checksum the sender's veth must fill in: the interface
  needs tx checksum offload off (netns.configure_inside does it), or clients drop them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets
import signal
import socket
import struct
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from netfate.access.addressing import CpeAccess
from netfate.access.dnsmasq_process import PROGRAM, DnsmasqProcess
from netfate.drivers import netns as netns_driver
from netfate.errors import DriverError, InvalidInput
from netfate.proc import alive
from netfate.supervisor import stop_recorded as stop_pidfile

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def normalise_mac(mac: str) -> str:
    m = mac.strip().lower().replace("-", ":")
    if not _MAC.fullmatch(m):
        raise InvalidInput(f"{mac!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    if int(m[:2], 16) & 1:
        raise InvalidInput(f"{mac!r} is a multicast MAC, not a client's")
    return m


def _host_ip(ip: str) -> str:
    try:
        return str(ipaddress.IPv4Address(ip))
    except ValueError as exc:
        raise InvalidInput(f"{ip!r} is not an IPv4 address") from exc


def _lease_time(value: str) -> str:
    if not re.fullmatch(r"[0-9]{1,7}[smhdw]?|infinite", value):
        raise InvalidInput(f"lease time {value!r} is not like 120, 2m, 1h or infinite")
    return value


def _capport_url(url: str) -> str:
    if not re.fullmatch(r"https?://[\x21-\x7e]{1,240}", url) or '"' in url or "," in url:
        raise InvalidInput(f"captive portal API URL {url!r} is not a plain http(s) URL")
    return url


def stop_recorded(state_dir: Path) -> int | None:
    """End the dnsmasq whose PID <state_dir>/dnsmasq.pid records (a crashed parent's), if
    that PID still runs dnsmasq. Returns the PID ended."""
    return stop_pidfile(Path(state_dir) / "dnsmasq.pid", (PROGRAM,))


class Dnsmasq(DnsmasqProcess):
    """dnsmasq for one CPE in namespace ``netns`` (None: the current one), serving
    ``interface``. ``records``: name -> IPv4 the DNS answers; ``other_names``: the IPv4
    every other name resolves to (None: nothing else resolves; the sealed testbed's stand-in
    for the internet's DNS). ``dns_port`` 0 turns DNS off.

    ``lease_time`` is the dynamic pool's (pre-login) lease, ``host_lease_time`` the static
    hosts' (logged-in users' stable addresses): a short pre-login lease makes a device that
    just logged in renew, and so take its stable address, soon. ``capport_url``: announced
    in DHCP option 114 (RFC 8910)."""

    def __init__(
        self,
        netns: str | None,
        cpe: CpeAccess,
        state_dir: Path,
        *,
        interface: str = "eth0",
        records: Mapping[str, str] | None = None,
        lease_time: str = "1h",
        host_lease_time: str | None = None,
        dns_port: int = 53,
        other_names: str | None = None,
        capport_url: str | None = None,
        binary: str = PROGRAM,
    ) -> None:
        super().__init__("dnsmasq", netns, state_dir, binary)
        self.cpe = cpe
        # Its files beside the process's own: the static leases and the lease database.
        self.hostsfile = self.state_dir / "dhcp-hosts"
        self.leasefile = self.state_dir / "leases"
        self.interface = interface
        self.records = {k: _host_ip(v) for k, v in (records or {}).items()}
        self.lease_time = lease_time
        self.host_lease_time = _lease_time(host_lease_time) if host_lease_time else None
        self.dns_port = dns_port
        self.other_names = _host_ip(other_names) if other_names else None
        self.capport_url = _capport_url(capport_url) if capport_url else None
        self._hosts_lock = threading.Lock()

    def argv(self) -> list[str]:
        c = self.cpe
        args = [
            self.binary,
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--user=root",
            "--bind-interfaces",
            f"--interface={self.interface}",
            "--no-resolv",
            "--no-hosts",
            f"--port={self.dns_port}",
            "--local=/netfate/",  # other .netfate names: NXDOMAIN, not REFUSED
            "--dhcp-authoritative",
            "--no-ping",
            f"--dhcp-range={c.pool_start},{c.pool_end},{c.netmask},{self.lease_time}",
            f"--dhcp-option=option:router,{c.router}",
            f"--dhcp-option=option:dns-server,{c.dns}",
            f"--dhcp-hostsfile={self.hostsfile}",
            f"--dhcp-leasefile={self.leasefile}",
            f"--log-facility={self.logfile}",
            "--log-dhcp",
        ]
        args += [f"--host-record={name},{ip}" for name, ip in sorted(self.records.items())]
        if self.other_names:
            args.append(f"--address=/#/{self.other_names}")
        if self.capport_url:
            # RFC 8910 section 2.1: the URI of the captive portal API, as a string.
            args.append(f"--dhcp-option=114,{self.capport_url}")
        return args

    def _before_start(self) -> None:
        if not self.hostsfile.exists():
            self.hostsfile.write_text("")
        with contextlib.suppress(FileNotFoundError):
            self.logfile.unlink()

    def wanted_ports(self) -> set[int]:
        return {67} | ({self.dns_port} if self.dns_port else set())

    # -- static hosts and leases --------------------------------------------------------
    def set_hosts(self, hosts: Mapping[str, str]) -> None:
        """Replace the static hosts (mac -> ip): atomic rewrite, then SIGHUP so dnsmasq
        re-reads it. A client gets its address at its next DHCP exchange."""
        lease = f",{self.host_lease_time}" if self.host_lease_time else ""
        lines = sorted(f"{normalise_mac(mac)},{_host_ip(ip)}{lease}"
                       for mac, ip in hosts.items())
        ips = [line.split(",")[1] for line in lines]
        if len(set(ips)) != len(ips):
            raise InvalidInput(f"two MACs get the same static address: {lines}")
        with self._hosts_lock:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.hostsfile.with_name(f".dhcp-hosts.{secrets.token_hex(4)}")
            tmp.write_text("".join(line + "\n" for line in lines))
            os.replace(tmp, self.hostsfile)
            pid = self.pid
            if pid is not None and alive(pid):
                os.kill(pid, signal.SIGHUP)

    def hosts(self) -> dict[str, str]:
        out: dict[str, str] = {}
        with contextlib.suppress(FileNotFoundError):
            for line in self.hostsfile.read_text().splitlines():
                mac, _, rest = line.partition(",")
                ip = rest.split(",")[0]
                if mac and ip:
                    out[mac] = ip
        return out

    def leases(self) -> dict[str, str]:
        """Current leases, mac -> ip (dnsmasq's lease file: expiry mac ip name client-id)."""
        out: dict[str, str] = {}
        try:
            text = self.leasefile.read_text()
        except FileNotFoundError:
            return out
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 3 and _MAC.fullmatch(parts[1]):
                out[parts[1]] = parts[2]
        return out

    def mac_for(self, ip: str) -> str | None:
        for mac, leased in self.leases().items():
            if leased == ip:
                return mac
        return None


def dns_query(netns: str | None, server: str, name: str, *, port: int = 53,
              timeout: float = 1.0) -> list[str]:
    """The A records ``server`` gives for ``name``, asked from inside ``netns``; [] for
    NXDOMAIN or no data. OSError on timeout, DriverError on a malformed answer."""
    qid = secrets.randbelow(65536)
    qname = b"".join(bytes([len(p)]) + p.encode("ascii") for p in name.rstrip(".").split("."))
    query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + b"\0" + struct.pack(
        "!HH", 1, 1)
    with netns_driver.socket_in(netns, socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect((server, port))
        s.send(query)
        deadline = time.monotonic() + timeout
        while True:
            s.settimeout(max(0.001, deadline - time.monotonic()))
            data = s.recv(4096)
            if len(data) >= 12 and struct.unpack("!H", data[:2])[0] == qid:
                break
    return _answers(data, len(query))


def _answers(data: bytes, offset: int) -> list[str]:
    try:
        ancount = struct.unpack("!H", data[6:8])[0]
        out = []
        pos = offset  # the answer follows our question, echoed verbatim
        for _ in range(ancount):
            if data[pos] & 0xC0 == 0xC0:
                pos += 2
            else:
                while data[pos]:
                    pos += 1 + data[pos]
                pos += 1
            rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", data[pos:pos + 10])
            pos += 10
            if rtype == 1 and rdlen == 4:
                out.append(socket.inet_ntoa(data[pos:pos + 4]))
            pos += rdlen
        return out
    except (IndexError, struct.error) as exc:
        raise DriverError(f"malformed DNS answer: {exc}") from exc
