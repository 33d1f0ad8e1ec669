"""The captive resolver: a second dnsmasq in a CPE's services namespace, DNS only, that
answers every name with the portal's address and never asks anyone else.

Until a client logs in, the CPE's switch sends its DNS, to whatever resolver, here: the
switch rewrites the destination port 53 to CAPTIVE_DNS_PORT (the mark that it is captive),
the services namespace's nft `redirect` takes it whatever the destination address, and the
switch gives the answer port 53 back (controller/flows.py). So `http://example.com/` and the
operating systems' probe hosts (connectivitycheck.gstatic.com, captive.apple.com,
www.msftconnecttest.com) reach the portal by name, which redirects them to the login page;
and since nothing is ever forwarded, DNS cannot be used as a tunnel before login.

Answers carry TTL 0 (--local-ttl), so a browser does not keep the portal's address for the
site once its owner is logged in and their DNS goes to the CPE's ordinary resolver.
Files, in <state_dir>: captive-dns.pid (the supervisor's record), captive-dns.log, .out.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from netfate.access.addressing import CAPTIVE_DNS_PORT
from netfate.access.dnsmasq import _host_ip
from netfate.access.dnsmasq_process import PROGRAM, DnsmasqProcess
from netfate.supervisor import stop_recorded as stop_pidfile


def stop_recorded(state_dir: Path) -> int | None:
    """End the captive resolver recorded in <state_dir>/captive-dns.pid, if it still runs."""
    return stop_pidfile(Path(state_dir) / "captive-dns.pid", (PROGRAM,))


class CaptiveDns(DnsmasqProcess):
    """dnsmasq on ``port`` in ``netns``, on ``interface``: ``records`` (name -> IPv4) as
    given, every other name -> ``portal_ip``. No DHCP, no upstream, no hosts file."""

    def __init__(self, netns: str | None, portal_ip: str, state_dir: Path, *,
                 interface: str = "eth0", records: Mapping[str, str] | None = None,
                 port: int = CAPTIVE_DNS_PORT, binary: str = PROGRAM) -> None:
        super().__init__("captive-dns", netns, state_dir, binary)
        self.portal_ip = _host_ip(portal_ip)
        self.interface = interface
        self.records = {k: _host_ip(v) for k, v in (records or {}).items()}
        self.port = port

    def argv(self) -> list[str]:
        args = [
            self.binary, "--keep-in-foreground", "--conf-file=/dev/null", "--pid-file=",
            "--user=root", "--bind-interfaces", f"--interface={self.interface}",
            "--no-resolv", "--no-hosts", "--no-poll", f"--port={self.port}",
            "--local-ttl=0", "--cache-size=0",
            # Every name, any type: A gets the portal, others no data; nothing is forwarded.
            f"--address=/#/{self.portal_ip}",
            f"--log-facility={self.logfile}",
        ]
        args += [f"--host-record={name},{ip}" for name, ip in sorted(self.records.items())]
        return args

    def wanted_ports(self) -> set[int]:
        return {self.port}
