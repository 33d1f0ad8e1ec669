"""The captive resolver: a second dnsmasq in a CPE's services namespace, DNS only, that
never asks anyone else.

Until a client logs in, the CPE's switch sends its DNS, to whatever resolver, here: the
switch rewrites the destination port 53 to CAPTIVE_DNS_PORT (the mark that it is captive),
the services namespace's nft `redirect` takes it whatever the destination address, and the
switch gives the answer port 53 back (controller/flows_services.py). It answers:

- the CPE's local zone (access/local_zone.py: the platform's names, the testbed's internet
  host, the operator's local records) with the REAL addresses, the same answers the
  ordinary resolver gives after login; other names of the platform's own domain, NXDOMAIN.
  The switch takes a captive client's HTTP to the portal whatever its destination address,
  so these names reach the portal before login all the same, and after it the browser's
  cached answer (Chromium keeps one about 60 s, whatever the TTL) is already the right one;
- every other name (one only recursion could answer: `http://example.com/`, the operating
  systems' probe hosts connectivitycheck.gstatic.com, captive.apple.com,
  www.msftconnecttest.com) with the portal's address, TTL 0, so they reach the portal,
  which redirects them to the login page. Nothing is ever forwarded, so DNS cannot be used
  as a tunnel before login.

Files, in <state_dir>: captive-dns.pid (the supervisor's record), captive-dns.log, .out.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from netfate.access.addressing import CAPTIVE_DNS_PORT
from netfate.access.dnsmasq import _host_ip
from netfate.access.dnsmasq_process import PROGRAM, DnsmasqProcess
from netfate.access.local_zone import LOCAL_DOMAINS, check_name
from netfate.supervisor import stop_recorded as stop_pidfile


def stop_recorded(state_dir: Path) -> int | None:
    """End the captive resolver recorded in <state_dir>/captive-dns.pid, if it still runs."""
    return stop_pidfile(Path(state_dir) / "captive-dns.pid", (PROGRAM,))


class CaptiveDns(DnsmasqProcess):
    """dnsmasq on ``port`` in ``netns``, on ``interface``: ``records`` (the local zone,
    name -> IPv4) as given, other names under ``local_domains`` NXDOMAIN, every other name
    -> ``portal_ip`` (TTL 0). No DHCP, no upstream, no hosts file. InvalidInput for a bad
    address or name."""

    def __init__(self, netns: str | None, portal_ip: str, state_dir: Path, *,
                 interface: str = "eth0", records: Mapping[str, str] | None = None,
                 local_domains: tuple[str, ...] = LOCAL_DOMAINS,
                 port: int = CAPTIVE_DNS_PORT, binary: str = PROGRAM) -> None:
        super().__init__("captive-dns", netns, state_dir, binary)
        self.portal_ip = _host_ip(portal_ip)
        self.interface = interface
        self.records = {k: _host_ip(v) for k, v in (records or {}).items()}
        self.local_domains = tuple(d.strip(".").lower() for d in local_domains)
        for d in self.local_domains:
            check_name(f"x.{d}")
        self.port = port

    def argv(self) -> list[str]:
        args = [
            self.binary, "--keep-in-foreground", "--conf-file=/dev/null", "--pid-file=",
            "--user=root", "--bind-interfaces", f"--interface={self.interface}",
            "--no-resolv", "--no-hosts", "--no-poll", f"--port={self.port}",
            "--local-ttl=0", "--cache-size=0",
            # Any other name, any type: A gets the portal, others no data; nothing is
            # forwarded. The local zone's records below override it (dnsmasq answers its
            # host records before --address), and the more specific --local domains
            # answer NXDOMAIN for their unknown names, as the ordinary resolver does.
            f"--address=/#/{self.portal_ip}",
            f"--log-facility={self.logfile}",
        ]
        args += [f"--local=/{d}/" for d in self.local_domains]
        args += [f"--host-record={name},{ip}" for name, ip in sorted(self.records.items())]
        return args

    def wanted_ports(self) -> set[int]:
        return {self.port}
