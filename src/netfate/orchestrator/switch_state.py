"""Each switch's desired state, decided by a pure function of the world (Faucet's way: no
database, no bus, no clock here; `Switches` reads the world and publishes what this returns).

- A CPE's users are those steered there (a desired steering rule: the engine placed their
  chain and the user is associated there). Each is authenticated, behind the access port the
  agent reports their MAC on, with their chain as NF port pairs. A run of the chain's NFs on
  another node (a PE, the DC) is a Remote step through the tunnel to that node, which hosts
  it as a Transit (issue 11). A node with no tunnel to it (its agent reports none: no route)
  leaves the user out, with the reason logged (fail closed, never half-built).
- A user just logged in is also served on their pre-login DHCP address, as long as the
  CPE's lease for their MAC still shows it (until the device renews: no reconnect needed).
- Any other station on an access port (associated, or seen by the controller in a DHCP
  request) is an unauthenticated client: DHCP, DNS and the captive portal only. There are at
  most `max_hosts_per_port` of them per access port and `max_hosts_per_node` per node, the
  newest kept (DHCP starvation; Faucet's max_hosts).
- One bad entry (a record the model refuses: a group MAC, an address that is not one, two
  users on one address) is left out, logged and counted (counters.ENTRIES_SKIPPED): it never
  keeps the rest of the switch's state from being built.
- The core/PE switch sends each steered user's traffic down the link to their CPE.
- Mid-migration (the user's session is at another CPE than their newest steering, whose NFs
  still serve them): the old CPE keeps them Anchored, the core diverts their traffic through
  it, and the visited CPE lets them out by its uplink only once the core has confirmed the
  anchor (make-before-break).

Why here and not in `controller/`: the controller's pipeline turns a SwitchState into flows
and knows nothing of users' sessions, NF instances or descriptors; this module turns the
orchestrator's records into SwitchStates. The two meet at `controller.model`, the contract.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import ValidationError

from netfate import naming
from netfate.bus.messages import SwitchPorts
from netfate.controller import model
from netfate.controller import pipeline as pl
from netfate.counters import ENTRIES_SKIPPED, REGISTRY
from netfate.db.repo.switching import ChainNf, SteeredRule, SwitchingRecords
from netfate.validators import station_ipv4

log = logging.getLogger("netfate.orchestrator.switches")

UNKNOWN_CLIENT = "~"  # prefix of an unauthenticated client's name: no user name has it


@dataclass(frozen=True)
class World:
    """What every switch's state is decided from: the database's records, and what the
    agents and the controller report (kept in memory by `Switches`).

    - `ports`: each node's switch ports as its agent last reported them;
    - `seen`: node -> MAC -> port of stations the controller saw (DHCP) on that switch,
      oldest first;
    - `anchors_ready`: users whose anchor the core has confirmed (the visited CPE may let
      them out);
    - `idle_timeout`: seconds without packets before a user's flows expire (idle release).
    """

    records: SwitchingRecords = field(default_factory=SwitchingRecords)
    ports: Mapping[str, SwitchPorts] = field(default_factory=dict)
    seen: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    anchors_ready: frozenset[str] = frozenset()
    idle_timeout: int = 60
    max_hosts_per_port: int = 32
    max_hosts_per_node: int = 256
    dhcp_pps: int = 0


_T = TypeVar("_T")


def _entry(node: str, what: str, make: Callable[[], _T]) -> _T | None:
    """One entry of a switch's state, or None (logged and counted) when the model refuses
    it: a bad record costs that entry, never the switch's state."""
    try:
        return make()
    except (ValidationError, ValueError, KeyError, TypeError) as exc:
        REGISTRY.inc(ENTRIES_SKIPPED, where="orchestrator", node=node)
        log.warning("%s: left out %s: %s", node, what, str(exc).replace("\n", " "))
        return None


def switch_state(world: World, node: str) -> model.SwitchState | None:
    """The desired state of `node`'s switch, generation 0 (the publisher numbers it); None for
    a node the database does not know. Entries the model refuses are left out (logged and
    counted); raises ValueError only when what is left still is not a state (the node's own
    ports clash), which no user's input can cause."""
    rec = world.records
    role = rec.roles.get(node)
    if role is None:
        return None
    ports = world.ports.get(node, SwitchPorts())
    if role == "cpe":
        state = _cpe(world, node, ports, rec.rules_at.get(node, ()), rec.anchors)
    else:
        # Only the users located below it (at a node under one of its child links, however
        # deep: a CPE under a PE under a DC), in user order; O(nodes), not O(users).
        to_node = {peer: port for port, peer in ports.links.items() if port != ports.uplink}
        below = sorted((r for at, rs in rec.newest_at.items()
                        if _below(world, to_node, at) is not None for r in rs),
                       key=lambda r: r.user)
        state = _core(world, node, role, ports, below, rec.anchors)
    # Table I: an operator's own TS rules for this LSI (rule ids are unique per node).
    ts_rules = rec.ts_rules.get(node, ())
    if ts_rules:
        state = _entry(node, "its TS rules", lambda: model.SwitchState.model_validate(
            {**state.model_dump(), "ts_rules": ts_rules})) or state
    return state


def split_chain(chain: list[tuple[model.Step, str]], classes: Iterable[Mapping[str, Any]]
                ) -> tuple[tuple[model.Step, ...], tuple[model.Classifier, ...]]:
    """The user's chain (steps with their NF names, in order) and traffic classes -> the
    default chain (the NFs no class names) and a classifier per class (its NFs, in order).
    A remote stretch is one step for all its NFs: a class naming any of them crosses it."""
    classes = list(classes)
    named = {nf for c in classes for nf in c.get("nfs", [])}
    default = _steps(h for h, nf in chain if nf not in named)
    out = []
    for c in classes:
        want = set(c.get("nfs", []))
        out.append(model.Classifier(
            name=c["name"], priority=c["priority"], ip_proto=c.get("ip_proto"),
            remote_port=c.get("remote_port"), remote=c.get("remote"),
            chain=_steps(h for h, nf in chain if nf in want)))
    return default, tuple(out)


def _steps(steps: Iterable[model.Step]) -> tuple[model.Step, ...]:
    """In order, each step once (a remote stretch's NFs share one step)."""
    return tuple(dict.fromkeys(steps))


Stretch = tuple[str, int | None, list[tuple[model.Hop, str]]]


def stretches(world: World, r: SteeredRule) -> list[Stretch] | None:
    """The rule's chain as runs of NFs on one node, in order: (node, segment, [(hop, NF)]),
    the segment numbering the runs not on the rule's node (None for those on it). None if
    an NF has no hop (not recorded, or fewer than two ports)."""
    out: list[Stretch] = []
    segment = 0
    for h in _chain(world, r):
        if h is None:
            return None
        node, hop, nf = h
        if out and out[-1][0] == node:
            out[-1][2].append((hop, nf))
            continue
        seg = None
        if node != r.node:
            seg, segment = segment, segment + 1
        out.append((node, seg, [(hop, nf)]))
    return out


def _transits(world: World, node: str, ports: SwitchPorts) -> list[model.Transit]:
    """The stretches of other nodes' users' chains hosted here, each reached by the tunnel to
    the user's access node (the newest steering of each user)."""
    out: list[model.Transit] = []
    # Only users with an NF here (indexed once per read): a publication of every switch is
    # then linear in the records, not switches x users.
    for r in world.records.by_nf_node.get(node, ()):
        if r.node == node:
            continue
        for where, seg, run in stretches(world, r) or ():
            if where != node or seg is None:
                continue
            tun = ports.tunnels.get(r.node)
            if tun is None:
                log.warning("%s: no tunnel to %s: %s's stretch %d is not hosted", node,
                            r.node, r.user, seg)
                continue
            t = _entry(node, f"transit of {r.user}", lambda: model.Transit(
                name=r.user, mac=r.mac, port=tun, segment=seg,  # noqa: B023
                chain=tuple(h for h, _ in run)))  # noqa: B023
            if t is not None:
                out.append(t)
    return out


def hop_of(iid: str, nf: ChainNf, user: str | None = None) -> model.Hop | None:
    """An NF instance's hop: its LAN-side and WAN-side switch ports (the descriptor's ports
    with role lan/wan, else the first and the last); None with fewer than two ports. A
    shared NF's hop for `user` carries their VLAN (NNF paper IV.E: each tenant's traffic
    marked on the NF's ports, pipeline.tenant_vlan)."""
    if len(nf.ports) < 2:
        return None
    lan = next((p for p in nf.ports if p.get("role") == "lan"), nf.ports[0])
    wan = next((p for p in nf.ports if p.get("role") == "wan"), nf.ports[-1])
    vlan = pl.tenant_vlan(user) if nf.shared and user is not None else None
    return model.Hop(lan=naming.nf_port(iid, lan["name"]), wan=naming.nf_port(iid, wan["name"]),
                     vlan=vlan)


def _chain(world: World, r: SteeredRule) -> list[tuple[str, model.Hop, str] | None]:
    """The rule's chain as (node, hop, NF name) per instance; None for one with no hop."""
    out: list[tuple[str, model.Hop, str] | None] = []
    for iid in r.chain:
        nf = world.records.nfs.get(iid)
        hop = hop_of(iid, nf, r.user) if nf is not None else None
        out.append((nf.node, hop, nf.nf) if nf is not None and hop is not None else None)
    return out


def _idle(world: World, user: str) -> int:
    """The user's idle timeout: their login's Idle-Timeout (RADIUS), else the world's."""
    return world.records.idle_timeouts.get(user, world.idle_timeout)


def _stations(world: World, node: str, ports: SwitchPorts) -> dict[str, str]:
    """MAC -> port of the stations on the node's switch (the agent's report wins)."""
    return {**world.seen.get(node, {}), **ports.stations}


def _station_at(world: World, node: str, mac: str) -> str | None:
    p = world.ports.get(node, SwitchPorts())
    port = _stations(world, node, p).get(mac)
    return port if port in p.access else None


class _Users:
    """The users of a CPE's state, added one at a time: an entry the model refuses, or that
    clashes with one already in (same name, MAC or address), is left out (`_entry`)."""

    def __init__(self, node: str, access: Iterable[str]) -> None:
        self.node = node
        self.access = set(access)
        self.users: list[model.Client] = []
        self.anchored: list[model.Anchored] = []
        self.names: set[str] = set()
        self.macs: set[str] = set()
        self.ips: set[str] = set()

    def _clash(self, name: str, mac: str, ip: str | None) -> str | None:
        if name in self.names:
            return f"{name} is listed twice"
        if mac.lower() in self.macs:
            return f"MAC {mac} is taken"
        if ip is not None and ip in self.ips:
            return f"address {ip} is taken"
        return None

    def _take(self, name: str, mac: str, ip: str | None) -> None:
        self.names.add(name)
        self.macs.add(mac)
        if ip is not None:
            self.ips.add(ip)

    def client(self, **kw: Any) -> model.Client | None:
        def make() -> model.Client:
            c = model.Client(**kw)
            if (why := self._clash(c.name, c.mac, c.ip)) is not None:
                raise ValueError(why)
            if c.port not in self.access:
                raise ValueError(f"port {c.port} is not an access port")
            return c
        c = _entry(self.node, f"user {kw.get('name')} ({kw.get('mac')})", make)
        if c is not None:
            self._take(c.name, c.mac, c.ip)
            self.ips.update(c.extra_ips)
            self.users.append(c)
        return c

    def anchor(self, **kw: Any) -> None:
        def make() -> model.Anchored:
            a = model.Anchored(**kw)
            if (why := self._clash(a.name, a.mac, a.ip)) is not None:
                raise ValueError(why)
            return a
        a = _entry(self.node, f"anchored user {kw.get('name')} ({kw.get('mac')})", make)
        if a is not None:
            self._take(a.name, a.mac, a.ip)
            self.anchored.append(a)


def newest_stations(stations: Iterable[tuple[str, str]], per_port: int, per_node: int
                    ) -> list[tuple[str, str]]:
    """(MAC, port) pairs, oldest first -> the newest at most `per_port` of each port and
    `per_node` in all (DHCP starvation: Faucet's max_hosts), oldest first."""
    kept: list[tuple[str, str]] = []
    on_port: Counter[str] = Counter()
    for mac, port in reversed(list(stations)):
        if len(kept) >= per_node:
            break
        if on_port[port] < per_port:
            on_port[port] += 1
            kept.append((mac, port))
    return kept[::-1]


def _cpe(world: World, node: str, ports: SwitchPorts, rules: Iterable[SteeredRule],
         anchors: dict[str, tuple[SteeredRule, str]]) -> model.SwitchState:
    stations = _stations(world, node, ports)
    out = _Users(node, ports.access)
    # Only this node's anchors: the old CPE of a user steered here, or their visited one.
    mine = {u: (r, v) for u, (r, v) in anchors.items() if r.node == node or v == node}
    for user, (r, visited) in mine.items():
        chain = _chain(world, r)
        if r.node == node and r.ip and chain and all(
                h is not None and h[0] == node for h in chain):
            if _station_at(world, visited, r.mac) is not None:
                out.anchor(name=user, mac=r.mac, ip=r.ip,
                           chain=tuple(h[1] for h in chain if h))
        elif visited == node and r.ip and stations.get(r.mac) in ports.access \
                and user in world.anchors_ready:
            # Visiting: out through the uplink, where the core takes it to the anchor.
            out.client(name=user, mac=r.mac, ip=r.ip, port=stations[r.mac],
                       authenticated=True, idle_timeout=_idle(world, user))
    rules = list(rules)
    stable = {r.ip for r in rules if r.ip} | out.ips
    away: list[str] = []
    for r in rules:
        if r.user in anchors:
            continue
        port = stations.get(r.mac)
        if port is None or port not in ports.access:
            away.append(r.user)
            continue
        chain = _chain(world, r)
        runs = stretches(world, r) if all(h is not None for h in chain) else None
        if runs is None:
            log.warning("%s: %s's chain %s has an NF with no ports: not steered", node,
                        r.user, list(r.chain))
            continue
        unreachable = sorted({w for w, seg, _ in runs if seg is not None
                              and w not in ports.tunnels})
        if unreachable:
            # Refused whole, never half-built: the user stays behind the portal.
            log.warning("%s: no route (tunnel) to %s: %s's chain is not steered", node,
                        unreachable, r.user)
            continue
        local: list[tuple[model.Step, str]] = []
        for w, seg, run in runs:
            if seg is None:
                local += run
            else:
                step = model.Remote(node=w, port=ports.tunnels[w], segment=seg)
                local += [(step, nf) for _, nf in run]
        parts = _entry(node, f"user {r.user}'s traffic classes", lambda: split_chain(
            local, world.records.classes.get(r.user) or ()))  # noqa: B023 - called at once
        if parts is None:
            continue
        # Just after login the device still holds its pre-login lease: served on it too, at
        # once, until its renewal hands it the stable address (the lease then shows that).
        pre = ports.leases.get(r.mac)
        extra = (pre,) if r.ip and pre and pre != r.ip and pre not in stable else ()
        out.client(name=r.user, mac=r.mac, ip=r.ip, port=port, authenticated=True,
                   idle_timeout=_idle(world, r.user), chain=parts[0], classifiers=parts[1],
                   extra_ips=extra)
    # Oldest first; stations the agent reports (associated) count as the newest, so a flood
    # of DHCP from made-up MACs pushes out its own kind before a real station.
    order = [*(m for m in world.seen.get(node, {}) if m not in ports.stations), *ports.stations]
    unknown = [(mac, stations[mac]) for mac in order
               if mac.lower() not in out.macs and stations[mac] in ports.access]
    for mac, port in sorted(newest_stations(unknown, world.max_hosts_per_port,
                                            world.max_hosts_per_node)):
        ip = ports.leases.get(mac)
        lease = ip
        if lease is not None and _entry(node, f"the lease {lease!r} of {mac}",
                                        lambda: station_ipv4(lease)) is None:  # noqa: B023
            ip = None  # a lease that is no address: the station still gets DHCP
        out.client(name=UNKNOWN_CLIENT + mac, mac=mac, port=port,
                   ip=ip if ip not in out.ips else None)
    if away:
        # One line per state, not one per user (a node before its agent reports its ports
        # has all its users here).
        log.debug("%s: %d steered users on no access port yet (%s%s)", node, len(away),
                  ", ".join(away[:5]), ", ..." if len(away) > 5 else "")
    svc = None
    if ports.services is not None:
        s = ports.services
        svc = _entry(node, "its access services", lambda: model.ServicesAttachment(
            port=s.port, mac=s.mac, ip=s.ip))
    return model.SwitchState(node=node, role="cpe", uplink=ports.uplink,
                             access_ports=tuple(ports.access), infra_ports=tuple(ports.infra),
                             services=svc, users=tuple(out.users),
                             anchored=tuple(out.anchored), dhcp_pps=world.dhcp_pps,
                             transits=tuple(_transits(world, node, ports)),
                             tunnels=tuple(sorted(ports.tunnels.values())))


def _parent(world: World, node: str) -> str | None:
    """The node at the other end of `node`'s uplink, as its agent reports it."""
    p = world.ports.get(node)
    return p.links.get(p.uplink) if p is not None and p.uplink else None


def _below(world: World, to_node: Mapping[str, str], node: str) -> str | None:
    """The port toward `node` from a switch whose child links are `to_node` (node -> port):
    the link to the node itself, or to its ancestor there (a CPE under a PE under a DC)."""
    seen: set[str] = set()
    cur: str | None = node
    while cur is not None and cur not in seen:
        if cur in to_node:
            return to_node[cur]
        seen.add(cur)
        cur = _parent(world, cur)
    return None


def _core(world: World, node: str, role: str, ports: SwitchPorts,
          rules: Iterable[SteeredRule], anchors: dict[str, tuple[SteeredRule, str]]
          ) -> model.SwitchState:
    to_node = {peer: port for port, peer in ports.links.items() if port != ports.uplink}
    locations = []
    seen: set[str] = set()
    for r in rules:
        port = _below(world, to_node, r.node)
        if port is None or r.mac in seen:
            continue
        seen.add(r.mac)
        anchor = None
        if r.user in anchors and r.ip:
            visited = _below(world, to_node, anchors[r.user][1])
            if visited is not None and visited != port:
                port, anchor = visited, port
        loc = _entry(node, f"location of {r.user}", lambda: model.Location(
            user=r.user, mac=r.mac, ip=r.ip, port=port, anchor=anchor))  # noqa: B023
        if loc is not None:
            locations.append(loc)
    infra = list(ports.infra) + ([ports.uplink] if ports.uplink else [])
    return model.SwitchState(node=node, role=role, infra_ports=tuple(sorted(set(infra))),  # type: ignore[arg-type]
                             locations=tuple(locations),
                             transits=tuple(_transits(world, node, ports)),
                             tunnels=tuple(sorted(ports.tunnels.values())))
