"""Desired state of a switch -> its OpenFlow 1.3 flows. Pure: no I/O, same input, same flows.

See pipeline.py for the tables. In short, on a CPE:

- table 0 drops every frame with a group (multicast/broadcast) source MAC on any port. On a
  CPE nothing but ARP and IPv4 passes, from any port to any port: no IPv6 (RS, NS, ...)
  until the platform serves it, whether the client is logged in or not.
- table 0 lets a client port send only ARP and IPv4 with the MAC and IP the client was given,
  and tags the packet with its user and direction (metadata); DHCP goes straight to the
  services namespace. NF ports only send what a chain expects back from them. The uplink
  only reaches a client with ARP for its address, or (authenticated) IPv4 to its address.
- table 1 counts each authenticated user's packets, both ways, in one idle-timeout flow.
- table 2 sends DNS and portal traffic to the CPE, and the rest through the user's chain:
  each NF port's output is matched again (port + user + classifier) to find the next hop.
- table 3 is the captive portal for unauthenticated users: their DNS, to any resolver, goes
  to the CPE's captive resolver (every name is the portal), their HTTP to the portal.
- TS rules (Table I) are explicit orders, one flow each in table 0 above all of that.

ARP never crosses a chain: it is L2 glue the switch checks itself (sender MAC and IP), and an
NF is a bump in the wire for IPv4. A port named in the state but not (yet) on the switch skips
the part that needs it, failing closed: the rest is installed, and the skip is reported.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from netfate.controller import pipeline as pl
from netfate.controller.flowmod import ETH_ARP, ETH_IPV4, FlowMod, Meter
from netfate.controller.model import (
    Classifier,
    Client,
    Hop,
    Location,
    Remote,
    Step,
    SwitchState,
    TSRule,
    hops,
)
from netfate.controller.model import chains as chains_of
from netfate.controller.pipeline import Kind
from netfate.controller.ts_rules import rule_flow

BROADCAST = "ff:ff:ff:ff:ff:ff"
TCP, UDP = 6, 17
DHCP_SERVER, DHCP_CLIENT, DNS, HTTP = 67, 68, 53, 80


class MissingPort(LookupError):
    pass


@dataclass
class FlowSet:
    flows: list[FlowMod] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # why parts of the state were left out
    meters: list[Meter] = field(default_factory=list)  # to install before the flows


@dataclass
class _Ports:
    ofports: Mapping[str, int]

    def __call__(self, name: str) -> int:
        if name not in self.ofports:
            raise MissingPort(name)
        return self.ofports[name]


def flows_for(state: SwitchState, ofports: Mapping[str, int]) -> list[FlowMod]:
    return build(state, ofports).flows


def build(state: SwitchState, ofports: Mapping[str, int]) -> FlowSet:
    # (they build on this module)
    from netfate.controller.anchor_local import anchor_local
    from netfate.controller.flows_remote import anchored, transit
    from netfate.controller.flows_services import services

    out = FlowSet()
    port = _Ports(ofports)
    clashing = _clashing_tags(state)
    # Each unit is installed whole or not at all (a port it names is missing, or it cannot
    # be expressed): one bad entry never keeps the rest of the switch's flows out.
    units: list[tuple[str, Callable[[], Iterator[FlowMod]]]] = [
        ("base", partial(_base, state, port))
    ]
    for p in state.infra_ports:
        units.append((f"infra port {p}", partial(_normal, p, port, state.role == "cpe")))
    if state.services is not None:
        units.append(("access services", partial(services, state, state.services, port)))
    for u in state.users:
        if u.name in clashing:
            out.skipped.append(f"user {u.name}: {clashing[u.name]}")
            continue
        units.append((f"user {u.name}", partial(_user, state, u, port)))
    for a in state.anchored:
        units.append((f"anchored user {a.name}", partial(anchored, state, a, port)))
        for u in state.users:  # (a unit each: a local user's missing port spares the rest)
            if u.authenticated and u.ip is not None and u.name not in clashing:
                units.append((f"anchored user {a.name} and user {u.name}",
                              partial(anchor_local, a, u, port)))
    for t in state.transits:
        if t.name in clashing:
            out.skipped.append(f"transit of {t.name}: {clashing[t.name]}")
            continue
        units.append((f"transit of {t.name} (segment {t.segment})", partial(transit, t, port)))
    for loc in state.locations:
        units.append((f"location of {loc.user}", partial(_location, loc, port)))
    for r in state.ts_rules:
        units.append((f"TS rule {r.rule_id}", partial(_ts_rule, r, port)))
    seen: set[tuple[int, int, tuple[tuple[str, Any], ...]]] = set()
    for what, make in units:
        try:
            flows = list(make())
        except MissingPort as exc:
            out.skipped.append(f"{what}: port {exc.args[0]} is not on the switch")
            continue
        except (ValueError, TypeError, KeyError) as exc:  # a state the model let through
            out.skipped.append(f"{what}: {type(exc).__name__}: {exc}")
            continue
        for f in flows:
            key = (f.table_id, f.priority, tuple(sorted(f.match.items())))
            if key not in seen:  # an NF in two of a user's chains: one ingress flow
                seen.add(key)
                out.flows.append(f)
    rate = state.dhcp_pps
    out.meters = [Meter(i, rate, rate)
                  for i in sorted({f.meter_id for f in out.flows if f.meter_id is not None})]
    return out


def _clashing_tags(state: SwitchState) -> dict[str, str]:
    """Users whose metadata tag another user already has (62-bit hashes: practically never,
    but never silently), or whose tunnel key bits another user with overlay traffic here
    has (18 bits: rare): the later one is left out, with why (fail closed)."""
    tags: dict[int, str] = {}
    keys: dict[int, str] = {}
    out: dict[str, str] = {}
    overlay = [u.name for u in state.users
               if any(isinstance(r, Remote) for c in chains_of(u) for r in c)]
    for name in [u.name for u in state.users] + [t.name for t in state.transits]:
        other = tags.setdefault(pl.user_tag(name), name)
        if other != name:
            out[name] = f"hashes to the same tag as user {other}"
    for name in overlay + [t.name for t in state.transits]:
        other = keys.setdefault(pl.tunnel_user(name), name)
        if other != name:
            out[name] = f"has the same tunnel key bits as user {other}"
    # Two tenants of one shared NF with the same VLAN: the NF could not tell them apart. The
    # first in name order keeps it, as in the NF's tenant list (orchestrator/tenants.py).
    vlans: dict[tuple[str, int], str] = {}
    tagged = [(u.name, h) for u in state.users for c in chains_of(u) for h in hops(c)]
    tagged += [(t.name, h) for t in state.transits for h in t.chain]
    for name, h in sorted(tagged, key=lambda nh: nh[0]):
        if h.vlan is not None:
            other = vlans.setdefault((h.lan, h.vlan), name)
            if other != name:
                out[name] = f"has the same VLAN {h.vlan} on {h.lan} as user {other}"
    return out


def _flow(kind: Kind, ident: str, table: int, priority: int, match: dict[str, Any],
          outputs: tuple[int | str, ...] = (), **kw: Any) -> FlowMod:
    return FlowMod(cookie=pl.cookie(kind, ident), priority=priority, match=match,
                   outputs=outputs, table_id=table, **kw)


# -- shared by every switch -------------------------------------------------------------------
def _base(state: SwitchState, port: _Ports) -> Iterator[FlowMod]:
    ident = f"{state.node}:base"
    for t in pl.TABLES:
        # ACTIVITY only counts: a user without an idle flow (or whose flow just expired)
        # still goes on to STEER. Every other table drops what nothing claimed.
        goto = pl.STEER if t == pl.ACTIVITY else None
        yield _flow(Kind.BASE, ident, t, pl.P_MISS, {}, goto_table=goto)
    yield _flow(Kind.BASE, ident, pl.INGRESS, pl.P_GROUP_SRC,
                {"eth_src": (pl.GROUP_BIT, pl.GROUP_BIT)})


def _normal(name: str, port: _Ports, v4_only: bool) -> Iterator[FlowMod]:
    if v4_only:  # a CPE passes no IPv6 (nor any other EtherType), even between infra ports
        for et in (ETH_ARP, ETH_IPV4):
            yield _flow(Kind.BASE, f"normal:{name}", pl.INGRESS, pl.P_NORMAL,
                        {"in_port": port(name), "eth_type": et}, ("normal",))
        return
    yield _flow(Kind.BASE, f"normal:{name}", pl.INGRESS, pl.P_NORMAL,
                {"in_port": port(name)}, ("normal",))


# -- CPE access services: DHCP, DNS, captive portal ---------------------------------------------
def _dhcp(**m: Any) -> dict[str, Any]:
    return {**m, "eth_type": ETH_IPV4, "ip_proto": UDP,
            "udp_src": DHCP_CLIENT, "udp_dst": DHCP_SERVER}


# -- a user on a CPE ------------------------------------------------------------------------
def _user(state: SwitchState, u: Client, port: _Ports) -> Iterator[FlowMod]:
    assert state.uplink is not None  # the model requires it when there are users
    p, up = port(u.port), port(state.uplink)
    svc = state.services
    s = port(svc.port) if svc is not None else None
    arp = {"in_port": p, "eth_src": u.mac, "eth_type": ETH_ARP, "arp_sha": u.mac}
    # An address probe (sender 0.0.0.0) is allowed before and after the client has an address.
    yield _flow(Kind.USER, u.name, pl.INGRESS, pl.P_ARP_FROM_CLIENT,
                {**arp, "arp_spa": "0.0.0.0"}, (up,))
    if s is not None:
        yield _flow(Kind.USER, u.name, pl.INGRESS, pl.P_DHCP_KNOWN,
                    _dhcp(in_port=p, eth_src=u.mac), (s,))
        for et in (ETH_ARP, ETH_IPV4):  # never IPv6 (nor any other EtherType)
            yield _flow(Kind.USER, u.name, pl.INGRESS, pl.P_USER,
                        {"in_port": s, "eth_dst": u.mac, "eth_type": et}, (p,))
    if svc is not None and s is not None:
        # The captive resolver's answers leave the services with its port as source: the
        # client asked port 53 (see _services).
        for proto, name in ((UDP, "udp_src"), (TCP, "tcp_src")):
            yield _flow(Kind.USER, u.name, pl.INGRESS, pl.P_DNS_REPLY,
                        {"in_port": s, "eth_dst": u.mac, "eth_type": ETH_IPV4,
                         "ip_proto": proto, name: svc.captive_dns_port}, (p,),
                        set_fields=((name, DNS),))
    if u.ip is None:
        return  # no address yet: DHCP is all it may do
    # Its address, and (just after login) the pre-login one it holds until it renews.
    addrs = (u.ip, *u.extra_ips)
    for addr in addrs:
        if svc is not None and s is not None:
            for ip in sorted({svc.ip, svc.resolver}):
                yield _flow(Kind.USER, u.name, pl.INGRESS, pl.P_ARP_TO_SERVICES,
                            {**arp, "arp_spa": addr, "arp_tpa": ip}, (s,))
        # Unauthenticated clients need ARP too: without the gateway's MAC the browser's first
        # HTTP packet is never sent, so there is nothing to redirect.
        yield _flow(Kind.USER, u.name, pl.INGRESS, pl.P_ARP_FROM_CLIENT,
                    {**arp, "arp_spa": addr}, (up,))
        yield _flow(Kind.USER, u.name, pl.INGRESS, pl.P_ARP_TO_CLIENT,
                    {"in_port": up, "eth_type": ETH_ARP, "arp_tpa": addr}, (p,))
    if not u.authenticated:
        yield _flow(Kind.USER, u.name, pl.INGRESS, pl.P_USER,
                    {"in_port": p, "eth_src": u.mac, "eth_type": ETH_IPV4, "ipv4_src": u.ip},
                    goto_table=pl.CAPTIVE)
        return
    for addr in addrs:
        yield _flow(Kind.USER, u.name, pl.INGRESS, pl.P_USER,
                    {"in_port": p, "eth_src": u.mac, "eth_type": ETH_IPV4, "ipv4_src": addr},
                    write_metadata=(pl.metadata(u.name, pl.UP), pl.ALL_ONES),
                    goto_table=pl.ACTIVITY)
        yield _flow(Kind.USER, u.name, pl.INGRESS, pl.P_USER,
                    {"in_port": up, "eth_dst": u.mac, "eth_type": ETH_IPV4, "ipv4_dst": addr},
                    write_metadata=(pl.metadata(u.name, pl.DOWN), pl.ALL_ONES),
                    goto_table=pl.ACTIVITY)
    if u.idle_timeout:
        # One flow sees every packet of the user, both ways (the direction bits are masked):
        # its removal for idleness means "no packets for the idle period". Its expiry changes
        # no forwarding, since the table-miss of ACTIVITY also goes on to STEER.
        yield _flow(Kind.IDLE, u.name, pl.ACTIVITY, pl.P_IDLE,
                    {"metadata": (pl.user_tag(u.name) << 2, pl.USER_MASK)},
                    goto_table=pl.STEER, idle_timeout=u.idle_timeout, send_flow_removed=True)
    yield from _steering(u, p, up, port)


def _steering(u: Client, access: int, up: int, port: _Ports) -> Iterator[FlowMod]:
    chains = _chains(u)
    for prio, m_up, m_down, chain in chains:
        yield from _chain(u.name, prio, m_up, m_down, _steps(chain, port), access, up)
    # An NF in several of the user's chains hands back the same way: one set of flows.
    for h in dict.fromkeys(h for _, _, _, chain in chains for h in hops(chain)):
        yield from _nf_ingress(u.name, u.mac, port(h.lan), port(h.wan), vlan=h.vlan)
        for mac in h.own_macs:
            for et in (ETH_ARP, ETH_IPV4):  # never IPv6 (nor any other EtherType)
                yield _flow(Kind.NF_OWN, u.name, pl.INGRESS, pl.P_USER,
                            {"in_port": port(h.wan), "eth_src": mac, "eth_type": et}, (up,))
                yield _flow(Kind.NF_OWN, u.name, pl.INGRESS, pl.P_USER,
                            {"in_port": up, "eth_dst": mac, "eth_type": et}, (port(h.wan),))
    # What a remote stretch hands back: only the user's traffic, by its return keys.
    remotes = {r for _, _, _, chain in chains for r in chain if isinstance(r, Remote)}
    for r in sorted(remotes, key=lambda r: r.segment):
        yield from _tunnel_ingress(Kind.STEER, u.name, u.mac, port(r.port), r.segment,
                                   pl.UP_BACK, pl.DOWN_BACK)


_StepPorts = tuple[str, int, int, int | None]


def _steps(chain: tuple[Step, ...], port: _Ports) -> list[_StepPorts]:
    """("hop", lan, wan, tenant VLAN or None) or ("remote", tunnel port, segment, None), in
    upstream order."""
    return [("hop", port(h.lan), port(h.wan), h.vlan) if isinstance(h, Hop)
            else ("remote", port(h.port), h.segment, None) for h in chain]


def _classifier(c: Classifier) -> tuple[dict[str, Any], dict[str, Any]]:
    """Upstream match (remote end as destination) and its mirror for the return traffic."""
    up: dict[str, Any] = {}
    down: dict[str, Any] = {}
    if c.ip_proto is not None:
        up["ip_proto"] = down["ip_proto"] = c.ip_proto
    if c.remote is not None:
        up["ipv4_dst"] = down["ipv4_src"] = _oxm_net(c.remote)
    if c.remote_port is not None:
        name = "tcp" if c.ip_proto == TCP else "udp"
        up[f"{name}_dst"] = down[f"{name}_src"] = c.remote_port
    return up, down


def _oxm_net(net: str) -> str | tuple[str, str]:
    n = ipaddress.IPv4Network(net)
    if n.prefixlen == 32:
        return str(n.network_address)
    return (str(n.network_address), str(n.netmask))


def _chain(user: str, prio: int, m_up: dict[str, Any], m_down: dict[str, Any],
           steps: list[_StepPorts], access: int, up: int) -> Iterator[FlowMod]:
    """Upstream: access -> each step in order -> uplink; downstream the reverse. A local NF
    is entered by its LAN side upstream (WAN side downstream) and left by the other; a
    remote stretch is entered by its tunnel with the OUT key of its leg and left by the
    same tunnel with the BACK key (the far node's Transit turns it round)."""
    for meta, extra, legs, order, first, last in (
        (pl.metadata(user, pl.UP), m_up, (pl.UP_OUT, pl.UP_BACK), steps, access, up),
        (pl.metadata(user, pl.DOWN), m_down, (pl.DOWN_OUT, pl.DOWN_BACK), steps[::-1], up,
         access),
    ):
        upstream = legs[0] == pl.UP_OUT
        src: dict[str, Any] = {"in_port": first}
        for kind, a, b, vlan in order:
            if kind == "hop":
                into, out_of = (a, b) if upstream else (b, a)
                yield _hop(user, prio, src, meta, extra, into, vlan=vlan)
                src = {"in_port": out_of}
            else:
                yield _hop(user, prio, src, meta, extra, a,
                           set_fields=(("tunnel_id", pl.tunnel_key(user, b, legs[0])),))
                src = {"in_port": a, "tunnel_id": pl.tunnel_key(user, b, legs[1])}
        yield _hop(user, prio, src, meta, extra, last)


def _hop(user: str, prio: int, src: dict[str, Any], meta: int, extra: dict[str, Any],
         dst: int, set_fields: tuple[tuple[str, Any], ...] = (), vlan: int | None = None,
         kind: Kind = Kind.STEER) -> FlowMod:
    """Into `dst`; into a shared NF (`vlan`), tagged with the user's VLAN."""
    # OpenFlow never outputs to the ingress port unless told to (a tunnel in and out).
    out: tuple[int | str, ...] = ("in_port",) if dst == src["in_port"] else (dst,)
    if vlan is not None:
        set_fields = (*set_fields, ("vlan_vid", pl.VLAN_PRESENT | vlan))
    return _flow(kind, user, pl.STEER, prio,
                 {**src, "metadata": meta, "eth_type": ETH_IPV4, **extra}, out,
                 set_fields=set_fields, push_vlan=vlan is not None)


def _nf_ingress(user: str, mac: str, lan: int, wan: int, kind: Kind = Kind.STEER,
                vlan: int | None = None) -> Iterator[FlowMod]:
    """What an NF port may hand back: the user's IPv4, in the direction it was sent; from
    a shared NF (`vlan`), only with the user's VLAN, which the switch pops (another
    tenant's tag, or none, never passes as this user's traffic)."""
    tag = {} if vlan is None else {"vlan_vid": pl.VLAN_PRESENT | vlan}
    yield _flow(kind, user, pl.INGRESS, pl.P_USER,
                {"in_port": wan, **tag, "eth_src": mac, "eth_type": ETH_IPV4},
                write_metadata=(pl.metadata(user, pl.UP), pl.ALL_ONES), goto_table=pl.STEER,
                pop_vlan=vlan is not None)
    yield _flow(kind, user, pl.INGRESS, pl.P_USER,
                {"in_port": lan, **tag, "eth_dst": mac, "eth_type": ETH_IPV4},
                write_metadata=(pl.metadata(user, pl.DOWN), pl.ALL_ONES), goto_table=pl.STEER,
                pop_vlan=vlan is not None)


def _tunnel_ingress(kind: Kind, user: str, mac: str, tun: int, segment: int, up_leg: int,
                    down_leg: int) -> Iterator[FlowMod]:
    """What a tunnel may bring in for the user: their IPv4 with the key of this stretch and
    leg (upstream from their MAC, downstream to it); nothing else enters from the overlay."""
    yield _flow(kind, user, pl.INGRESS, pl.P_USER,
                {"in_port": tun, "tunnel_id": pl.tunnel_key(user, segment, up_leg),
                 "eth_src": mac, "eth_type": ETH_IPV4},
                write_metadata=(pl.metadata(user, pl.UP), pl.ALL_ONES), goto_table=pl.STEER)
    yield _flow(kind, user, pl.INGRESS, pl.P_USER,
                {"in_port": tun, "tunnel_id": pl.tunnel_key(user, segment, down_leg),
                 "eth_dst": mac, "eth_type": ETH_IPV4},
                write_metadata=(pl.metadata(user, pl.DOWN), pl.ALL_ONES), goto_table=pl.STEER)


# -- another node's user's stretch hosted here (the overlay) ------------------------------
def _chains(u: Client) -> list[tuple[int, dict[str, Any], dict[str, Any], tuple[Step, ...]]]:
    """A user's chains: (priority, upstream match, downstream match, steps: local hops and
    remote stretches), the default one first."""
    out: list[tuple[int, dict[str, Any], dict[str, Any], tuple[Step, ...]]] = [
        (pl.P_CHAIN, {}, {}, u.chain)]
    for c in u.classifiers:
        out.append((pl.P_CLASSIFIER_BASE + c.priority, *_classifier(c), c.chain))
    return out


# -- TS rules (Table I) -------------------------------------------------------------------
def _ts_rule(rule: TSRule, port: _Ports) -> Iterator[FlowMod]:
    yield rule_flow(rule, port)


# -- core/PE: where each user is now --------------------------------------------------------
def _location(loc: Location, port: _Ports) -> Iterator[FlowMod]:
    c = port(loc.port)
    if loc.anchor is not None and loc.ip is not None:
        # Mid-migration: the user's IPv4 goes through the CPE still running their NFs.
        a = port(loc.anchor)
        ip4 = {"eth_type": ETH_IPV4}
        yield _flow(Kind.LOCATION, loc.user, pl.INGRESS, pl.P_ANCHOR,
                    {**ip4, "in_port": c, "eth_src": loc.mac, "ipv4_src": loc.ip}, (a,))
        yield _flow(Kind.LOCATION, loc.user, pl.INGRESS, pl.P_ANCHOR,
                    {**ip4, "in_port": a, "eth_dst": loc.mac, "ipv4_dst": loc.ip}, (c,))
        yield _flow(Kind.LOCATION, loc.user, pl.INGRESS, pl.P_ANCHOR - 1,
                    {**ip4, "eth_dst": loc.mac, "ipv4_dst": loc.ip}, (a,))
    # OpenFlow never outputs to the ingress port unless told to: two users behind the same
    # CPE reach each other through the core only with an explicit IN_PORT.
    yield _flow(Kind.LOCATION, loc.user, pl.INGRESS, pl.P_LOCATION, {"eth_dst": loc.mac}, (c,))
    yield _flow(Kind.LOCATION, loc.user, pl.INGRESS, pl.P_LOCATION_HAIRPIN,
                {"in_port": c, "eth_dst": loc.mac}, ("in_port",))
    if loc.ip is not None:
        # ARP requests for the user's address go to its CPE only, not flooded to every CPE.
        arp = {"eth_type": ETH_ARP, "arp_tpa": loc.ip}
        yield _flow(Kind.LOCATION, loc.user, pl.INGRESS, pl.P_LOCATION_ARP, arp, (c,))
        yield _flow(Kind.LOCATION, loc.user, pl.INGRESS, pl.P_LOCATION_ARP_HAIRPIN,
                    {**arp, "in_port": c}, ("in_port",))
