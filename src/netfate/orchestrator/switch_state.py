"""Each switch's desired state, decided by a pure function of the world (Faucet's way: no
database, no bus, no clock here; `Switches` reads the world and publishes what this returns).

- A CPE's users are those steered there (a desired steering rule: the engine placed their
  chain and the user is associated there). Each is authenticated, behind the access port the
  agent reports their MAC on, with their chain as NF port pairs. A chain through another
  node's NFs is not built yet: the user is left out (fail closed).
- A user just logged in is also served on their pre-login DHCP address, as long as the
  CPE's lease for their MAC still shows it (until the device renews: no reconnect needed).
- Any other station on an access port (associated, or seen by the controller in a DHCP
  request) is an unauthenticated client: DHCP, DNS and the captive portal only.
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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from netfate import naming
from netfate.bus.messages import SwitchPorts
from netfate.controller import model
from netfate.db.repo.switching import ChainNf, SteeredRule, SwitchingRecords

log = logging.getLogger("netfate.orchestrator.switches")

UNKNOWN_CLIENT = "~"  # prefix of an unauthenticated client's name: no user name has it


@dataclass(frozen=True)
class World:
    """What every switch's state is decided from: the database's records, and what the
    agents and the controller report (kept in memory by `Switches`).

    - `ports`: each node's switch ports as its agent last reported them;
    - `seen`: node -> MAC -> port of stations the controller saw (DHCP) on that switch;
    - `anchors_ready`: users whose anchor the core has confirmed (the visited CPE may let
      them out);
    - `idle_timeout`: seconds without packets before a user's flows expire (idle release).
    """

    records: SwitchingRecords = field(default_factory=SwitchingRecords)
    ports: Mapping[str, SwitchPorts] = field(default_factory=dict)
    seen: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    anchors_ready: frozenset[str] = frozenset()
    idle_timeout: int = 60


def switch_state(world: World, node: str) -> model.SwitchState | None:
    """The desired state of `node`'s switch, generation 0 (the publisher numbers it); None for
    a node the database does not know. Raises ValueError (pydantic's ValidationError) when the
    records are inconsistent (two users on one address, say)."""
    rec = world.records
    role = rec.roles.get(node)
    if role is None:
        return None
    newest: dict[str, SteeredRule] = {}
    for r in rec.rules:
        newest.setdefault(r.user, r)
    anchors = {u: (r, rec.sessions[u]) for u, r in newest.items()
               if r.chain and rec.sessions.get(u) not in (None, r.node)}
    ports = world.ports.get(node, SwitchPorts())
    if role == "cpe":
        state = _cpe(world, node, ports, [r for r in rec.rules if r.node == node], anchors)
    else:
        state = _core(node, role, ports, list(newest.values()), anchors)
    # Table I: an operator's own TS rules for this LSI (rule ids are unique per node).
    ts_rules = rec.ts_rules.get(node, ())
    return state.model_copy(update={"ts_rules": ts_rules}) if ts_rules else state


def split_chain(chain: list[tuple[model.Hop, str]], classes: Iterable[Mapping[str, Any]]
                ) -> tuple[tuple[model.Hop, ...], tuple[model.Classifier, ...]]:
    """The user's chain (hops with their NF names, in order) and traffic classes -> the
    default chain (the NFs no class names) and a classifier per class (its NFs, in order)."""
    classes = list(classes)
    named = {nf for c in classes for nf in c.get("nfs", [])}
    default = tuple(h for h, nf in chain if nf not in named)
    out = []
    for c in classes:
        want = set(c.get("nfs", []))
        out.append(model.Classifier(
            name=c["name"], priority=c["priority"], ip_proto=c.get("ip_proto"),
            remote_port=c.get("remote_port"), remote=c.get("remote"),
            chain=tuple(h for h, nf in chain if nf in want)))
    return default, tuple(out)


def hop_of(iid: str, nf: ChainNf) -> model.Hop | None:
    """An NF instance's hop: its LAN-side and WAN-side switch ports (the descriptor's ports
    with role lan/wan, else the first and the last); None with fewer than two ports."""
    if len(nf.ports) < 2:
        return None
    lan = next((p for p in nf.ports if p.get("role") == "lan"), nf.ports[0])
    wan = next((p for p in nf.ports if p.get("role") == "wan"), nf.ports[-1])
    return model.Hop(lan=naming.nf_port(iid, lan["name"]), wan=naming.nf_port(iid, wan["name"]))


def _chain(world: World, r: SteeredRule) -> list[tuple[str, model.Hop, str] | None]:
    """The rule's chain as (node, hop, NF name) per instance; None for one with no hop."""
    out: list[tuple[str, model.Hop, str] | None] = []
    for iid in r.chain:
        nf = world.records.nfs.get(iid)
        hop = hop_of(iid, nf) if nf is not None else None
        out.append((nf.node, hop, nf.nf) if nf is not None and hop is not None else None)
    return out


def _stations(world: World, node: str, ports: SwitchPorts) -> dict[str, str]:
    """MAC -> port of the stations on the node's switch (the agent's report wins)."""
    return {**world.seen.get(node, {}), **ports.stations}


def _station_at(world: World, node: str, mac: str) -> str | None:
    p = world.ports.get(node, SwitchPorts())
    port = _stations(world, node, p).get(mac)
    return port if port in p.access else None


def _cpe(world: World, node: str, ports: SwitchPorts, rules: Iterable[SteeredRule],
         anchors: dict[str, tuple[SteeredRule, str]]) -> model.SwitchState:
    stations = _stations(world, node, ports)
    users: list[model.Client] = []
    anchored: list[model.Anchored] = []
    taken_ips: set[str] = set()
    for user, (r, visited) in anchors.items():
        chain = _chain(world, r)
        if r.node == node and r.ip and chain and all(
                h is not None and h[0] == node for h in chain):
            if _station_at(world, visited, r.mac) is not None:
                anchored.append(model.Anchored(name=user, mac=r.mac, ip=r.ip,
                                               chain=tuple(h[1] for h in chain if h)))
        elif visited == node and r.ip and stations.get(r.mac) in ports.access \
                and user in world.anchors_ready:
            # Visiting: out through the uplink, where the core takes it to the anchor.
            users.append(model.Client(name=user, mac=r.mac, ip=r.ip, port=stations[r.mac],
                                    authenticated=True, idle_timeout=world.idle_timeout))
            taken_ips.add(r.ip)
    rules = list(rules)
    stable = {r.ip for r in rules if r.ip} | taken_ips
    for r in rules:
        if r.user in anchors:
            continue
        port = stations.get(r.mac)
        chain = _chain(world, r)
        if port is None or port not in ports.access:
            log.info("%s: %s (%s) is on no access port yet", node, r.user, r.mac)
            continue
        if any(h is None or h[0] != node for h in chain):
            # Chains through other nodes' NFs (a DC) are not built yet: fail closed.
            log.warning("%s: %s's chain %s is not all local: not steered", node, r.user,
                        list(r.chain))
            continue
        local = [(h[1], h[2]) for h in chain if h is not None]
        default, classifiers = split_chain(local, world.records.classes.get(r.user) or ())
        # Just after login the device still holds its pre-login lease: served on it too, at
        # once, until its renewal hands it the stable address (the lease then shows that).
        pre = ports.leases.get(r.mac)
        extra = (pre,) if r.ip and pre and pre != r.ip and pre not in stable else ()
        users.append(model.Client(name=r.user, mac=r.mac, ip=r.ip, port=port,
                                authenticated=True, idle_timeout=world.idle_timeout,
                                chain=default, classifiers=classifiers, extra_ips=extra))
        taken_ips.update(ip for ip in (r.ip, *extra) if ip)
    known = {u.mac for u in users}
    for mac, port in sorted(stations.items()):
        if mac in known or port not in ports.access:
            continue
        ip = ports.leases.get(mac)
        users.append(model.Client(name=UNKNOWN_CLIENT + mac, mac=mac, port=port,
                                ip=ip if ip not in taken_ips else None))
        if ip:
            taken_ips.add(ip)
    svc = None
    if ports.services is not None:
        svc = model.ServicesAttachment(port=ports.services.port, mac=ports.services.mac,
                                   ip=ports.services.ip)
    return model.SwitchState(node=node, role="cpe", uplink=ports.uplink,
                             access_ports=tuple(ports.access), infra_ports=tuple(ports.infra),
                             services=svc, users=tuple(users), anchored=tuple(anchored))


def _core(node: str, role: str, ports: SwitchPorts, rules: Iterable[SteeredRule],
          anchors: dict[str, tuple[SteeredRule, str]]) -> model.SwitchState:
    to_node = {peer: port for port, peer in ports.links.items() if port != ports.uplink}
    locations = []
    seen: set[str] = set()
    for r in rules:
        port = to_node.get(r.node)
        if port is None or r.mac in seen:
            continue
        seen.add(r.mac)
        anchor = None
        if r.user in anchors and r.ip:
            visited = to_node.get(anchors[r.user][1])
            if visited is not None and visited != port:
                port, anchor = visited, port
        locations.append(
            model.Location(user=r.user, mac=r.mac, ip=r.ip, port=port, anchor=anchor))
    infra = list(ports.infra) + ([ports.uplink] if ports.uplink else [])
    return model.SwitchState(node=node, role=role, infra_ports=tuple(sorted(set(infra))),  # type: ignore[arg-type]
                             locations=tuple(locations))
