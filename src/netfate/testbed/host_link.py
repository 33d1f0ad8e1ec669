"""What a testbed host's LAN interface (eth0 in its namespace) really holds: its MAC and
IPv4 addresses, which may differ from the topology's (a DHCP lease, a stable address given
at login, a MAC the client changed as a device that randomises it does). `testbed status`
shows these, and `testbed move` keeps them (probe of 2026-12-06: a move put the topology's
MAC back on a client that had changed its own, and status showed the topology's address)."""

from __future__ import annotations

from dataclasses import dataclass

from pyroute2.netlink.exceptions import NetlinkError

from netfate.drivers import netns

LAN_IF = "eth0"


@dataclass(frozen=True)
class HostLink:
    """A host's eth0: ``mac`` (None when it has none), IPv4 ``addresses`` as CIDR strings
    (e.g. "10.90.1.7/16", in the kernel's order)."""

    mac: str | None
    addresses: tuple[str, ...]

    @property
    def address(self) -> str | None:
        """The first IPv4 address without its prefix length, or None."""
        return self.addresses[0].split("/")[0] if self.addresses else None


def read(ns: str) -> HostLink | None:
    """eth0 of namespace ``ns`` as the kernel holds it; None when the namespace or the link
    is gone (a host the testbed has not made, or one being moved)."""
    if not netns.exists(ns):
        return None
    try:
        with netns.iproute(ns) as ipr:
            idx = netns.link_index(ipr, LAN_IF)
            if idx is None:
                return None
            links = ipr.get_links(idx)
            mac = links[0].get_attr("IFLA_ADDRESS") if links else None
            addrs = tuple(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                          for a in ipr.get_addr(family=2, index=idx))
    except (OSError, NetlinkError):
        return None  # the namespace went while it was read
    return HostLink(mac=str(mac).lower() if mac else None, addresses=addrs)
