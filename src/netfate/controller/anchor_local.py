"""Traffic between a user anchored at a CPE (mid-migration: their NFs still run there while
they are at another CPE) and a user local to that CPE. Pure, like flows.py.

The core cannot tell a packet that has crossed one user's chain from one that has not (both
come from the anchor CPE): sent up after one chain, it would come back down and cross the
first chain again, forever. So the anchor CPE hands such traffic from the end of one user's
chain to the start of the other's itself, and it never goes up in between.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator

from netfate.controller import pipeline as pl
from netfate.controller.flowmod import ETH_IPV4, FlowMod
from netfate.controller.flows import _chains, _flow
from netfate.controller.model import Anchored, Client, Hop
from netfate.controller.pipeline import Kind


def anchor_local(a: Anchored, local: Client, port: Callable[[str], int]) -> Iterator[FlowMod]:
    """Both ways between anchored user `a` and `local`, each crossing both users' chains,
    in a band of their own above the users' chains (P_ANCHOR_LOCAL + the chain's priority,
    so `local`'s classes rank as they do in `local`'s own flows):

    - `a`'s upstream end (its last NF's WAN side) goes into the start of `local`'s
      downstream (their chain's last WAN side, or their port), whose own flows go on;
    - `local`'s upstream to `a` is a copy of `local`'s chain whose last step goes into the
      start of `a`'s downstream (its last NF's WAN side) instead of the uplink; the NF hands
      it back on its LAN side, where `a`'s own flows take it up to the core and the user."""
    a_end = a_in = port(a.chain[-1].wan)  # upstream leaves a's chain, downstream enters, here
    access = port(local.port)
    for prio, m_up, m_down, chain in _chains(local):
        if not (_covers(m_up.get("ipv4_dst"), a.ip) and _covers(m_down.get("ipv4_src"), a.ip)):
            continue  # this class of local's traffic never names a's address
        hops = [h for h in chain if isinstance(h, Hop)]
        if len(hops) != len(chain):
            # A stretch of local's chain runs on another node (the overlay): it cannot be
            # handed over inside this CPE; that class is left to the users' own flows.
            continue
        l_hops = [(port(h.lan), port(h.wan)) for h in hops]
        l_in = l_hops[-1][1] if l_hops else access  # local's downstream starts here
        yield _flow(Kind.STEER, a.name, pl.STEER, pl.P_ANCHOR_LOCAL + prio,
                    {"in_port": a_end, "metadata": pl.metadata(a.name, pl.UP),
                     "eth_type": ETH_IPV4, **m_down, "eth_dst": local.mac,
                     "ipv4_src": a.ip}, (l_in,))
        ingress = [access] + [wan for _, wan in l_hops]
        egress = [lan for lan, _ in l_hops] + [a_in]
        for src, dst in zip(ingress, egress, strict=True):
            yield _flow(Kind.STEER, a.name, pl.STEER, pl.P_ANCHOR_LOCAL + prio,
                        {"in_port": src, "metadata": pl.metadata(local.name, pl.UP),
                         "eth_type": ETH_IPV4, **m_up, "eth_dst": a.mac, "ipv4_dst": a.ip},
                        (dst,))


def _covers(net: str | tuple[str, str] | None, ip: str) -> bool:
    """Whether an OXM IPv4 match (None: any) takes `ip`."""
    if net is None:
        return True
    if isinstance(net, str):
        return net == ip
    return ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(f"{net[0]}/{net[1]}")
