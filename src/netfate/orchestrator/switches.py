"""The orchestrator's side of the SDN controller: each switch's desired state (SwitchState),
built from the NFVI database and what the agents see on their switches, published on the bus.

- A CPE's users are those steered there (a desired steering rule: the engine placed their
  chain and the user is associated there). Each is authenticated, behind the access port
  the agent reports their MAC on, with their chain as NF port pairs.
- Any other station on an access port (associated, or seen by the controller in a DHCP
  request) is an unauthenticated client: DHCP, DNS and the captive portal only.
- The core/PE switch sends each steered user's traffic down the link to their CPE.
- Any switch also carries the TS rules (Table I) an operator put at its node.

States are published whole (level-triggered), with a generation; `apply` waits until the
controller confirms the generation (its barrier) so a plan's next step knows the flows are in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from netfate import naming
from netfate.bus import subjects
from netfate.bus.messages import SwitchPorts, SwitchSynced
from netfate.controller.model import (
    AccessServices,
    Anchored,
    Classifier,
    Hop,
    Location,
    SwitchState,
    User,
)
from netfate.db.models import (
    Bundle,
    Node,
    SessionState,
    SteeringRule,
    UserSession,
    VnfInstance,
)
from netfate.db.models import User as DbUser
from netfate.db.repo.ts_rules import ts_rules_for
from netfate.db.session import Database

log = logging.getLogger("netfate.orchestrator.switches")

UNKNOWN_CLIENT = "~"  # prefix of an unauthenticated client's name: no user name has it


def split_chain(chain: list[tuple[Hop, str]], classes: list[dict[str, Any]]
                ) -> tuple[tuple[Hop, ...], tuple[Classifier, ...]]:
    """The user's chain (hops with their NF names, in order) and traffic classes -> the
    default chain (the NFs no class names) and a classifier per class (its NFs, in order)."""
    named = {nf for c in classes for nf in c.get("nfs", [])}
    default = tuple(h for h, nf in chain if nf not in named)
    out = []
    for c in classes:
        want = set(c.get("nfs", []))
        out.append(Classifier(
            name=c["name"], priority=c["priority"], ip_proto=c.get("ip_proto"),
            remote_port=c.get("remote_port"), remote=c.get("remote"),
            chain=tuple(h for h, nf in chain if nf in want)))
    return default, tuple(out)


class Switches:
    def __init__(self, db: Database, nc: Any, idle_timeout: int = 60) -> None:
        self.db = db
        self.nc = nc
        self.idle_timeout = idle_timeout
        self.ports: dict[str, SwitchPorts] = {}
        self.seen: dict[str, dict[str, str]] = {}   # node -> MAC -> port (controller)
        # Generations grow across orchestrator restarts (ms clock), so a controller never
        # takes a new state for an old one.
        self._gen = int(time.time() * 1000) & 0x7FFFFFFF
        self._published: dict[str, SwitchState] = {}
        self._synced: dict[str, SwitchSynced] = {}
        self._waiters: dict[str, list[tuple[int, asyncio.Future[SwitchSynced]]]] = {}
        self._anchor_gen: dict[str, int] = {}       # user -> core generation anchoring them
        self._anchor_core: dict[str, set[str]] = {}

    # -- inputs -----------------------------------------------------------------------------
    def set_ports(self, node: str, ports: SwitchPorts) -> None:
        self.ports[node] = ports

    def client_seen(self, node: str, mac: str, port: str) -> bool:
        known = self.seen.setdefault(node, {})
        if known.get(mac) == port:
            return False
        known[mac] = port
        return True

    def synced(self, report: SwitchSynced) -> None:
        self._synced[report.node] = report
        waiters = self._waiters.get(report.node, [])
        for gen, fut in list(waiters):
            if report.generation >= gen and not fut.done():
                fut.set_result(report)
        self._waiters[report.node] = [(g, f) for g, f in waiters if not f.done()]
        if report.errors or report.skipped:
            log.warning("switch %s generation %d: errors %s, left out %s", report.node,
                        report.generation, report.errors, report.skipped)

    # -- desired state ----------------------------------------------------------------------
    def state_for(self, node: str) -> SwitchState | None:
        with self.db.session() as s:
            row = s.execute(sa.select(Node.role).where(Node.name == node)).first()
            if row is None:
                return None
            role = row.role.value
            rules = s.execute(
                sa.select(SteeringRule.user_name, SteeringRule.node_name, SteeringRule.mac,
                          SteeringRule.ip, SteeringRule.chain)
                .where(SteeringRule.desired.is_(True), SteeringRule.mac.is_not(None))
                # Newest first: a user steered at two CPEs (mid-move) is located at the one
                # steered last.
                .order_by(SteeringRule.user_name, SteeringRule.updated_at.desc())).all()
            at = dict(s.execute(sa.select(UserSession.user_name, UserSession.node_name)
                                .where(UserSession.state == SessionState.ACTIVE)).all())
            hops = self._hops(s, {i for r in rules for i in (r.chain or [])})
            names = sorted({r.user_name for r in rules})
            classes: dict[str, list[dict[str, Any]]] = {}
            if names:
                q = sa.select(DbUser.name, DbUser.classifiers).where(DbUser.name.in_(names))
                classes = {n: list(c or []) for n, c in s.execute(q)}
            ts_rules = ts_rules_for(s, node)  # Table I: an operator's own orders for this LSI
        newest: dict[str, Any] = {}
        for r in rules:
            newest.setdefault(r.user_name, r)
        # Mid-migration: the user's session is at another CPE than their newest steering
        # (whose NFs still serve them until the new ones are steered): anchored there.
        anchors = {u: (r, at[u]) for u, r in newest.items()
                   if r.chain and at.get(u) not in (None, r.node_name)}
        ports = self.ports.get(node, SwitchPorts())
        if role == "cpe":
            state = self._cpe(node, ports, [r for r in rules if r.node_name == node], hops,
                              anchors, classes)
        else:
            state = self._core(node, role, ports, list(newest.values()), anchors)
        # (rule ids are unique per node in the database, as the model wants)
        return state.model_copy(update={"ts_rules": ts_rules}) if ts_rules else state

    def _station_at(self, node: str, mac: str) -> str | None:
        p = self.ports.get(node, SwitchPorts())
        port = {**self.seen.get(node, {}), **p.stations}.get(mac)
        return port if port in p.access else None

    def anchor_ready(self, user: str) -> bool:
        """Whether the core has confirmed the anchor of this user's traffic: until then the
        visited CPE must not let the user out (it would bypass their NFs)."""
        need = self._anchor_gen.get(user)
        return need is not None and any(
            (rep := self._synced.get(n)) is not None and rep.generation >= need
            for n in self._anchor_core.get(user, ()))

    @staticmethod
    def _hops(s: Any, ids: set[str]) -> dict[str, tuple[str, Hop, str]]:
        """Instance id -> (its node, its hop: LAN-side and WAN-side switch ports, its NF)."""
        if not ids:
            return {}
        out: dict[str, tuple[str, Hop, str]] = {}
        q = (sa.select(VnfInstance.id, VnfInstance.node_name, Bundle.descriptor,
                       VnfInstance.nf_name)
             .join(Bundle, Bundle.sha256 == VnfInstance.bundle_sha256)
             .where(VnfInstance.id.in_(sorted(ids))))
        for iid, node, desc, nf in s.execute(q):
            ports = [p for p in (desc or {}).get("ports", []) if isinstance(p, dict)]
            if len(ports) < 2:
                continue
            lan = next((p for p in ports if p.get("role") == "lan"), ports[0])
            wan = next((p for p in ports if p.get("role") == "wan"), ports[-1])
            out[iid] = (node, Hop(lan=naming.nf_port(iid, lan["name"]),
                                  wan=naming.nf_port(iid, wan["name"])), nf)
        return out

    def _cpe(self, node: str, ports: SwitchPorts, rules: Iterable[Any],
             hops: dict[str, tuple[str, Hop, str]],
             anchors: dict[str, tuple[Any, str]],
             classes: dict[str, list[dict[str, Any]]] | None = None) -> SwitchState:
        stations = {**self.seen.get(node, {}), **ports.stations}
        users: list[User] = []
        anchored: list[Anchored] = []
        taken_ips: set[str] = set()
        for user, (r, visited) in anchors.items():
            chain = [hops.get(i) for i in (r.chain or [])]
            if r.node_name == node and r.ip and chain and all(
                    h is not None and h[0] == node for h in chain):
                if self._station_at(visited, r.mac) is not None:
                    anchored.append(Anchored(name=user, mac=r.mac, ip=r.ip,
                                             chain=tuple(h[1] for h in chain if h)))
            elif visited == node and r.ip and stations.get(r.mac) in ports.access \
                    and self.anchor_ready(user):
                # Visiting: out through the uplink, where the core takes it to the anchor.
                users.append(User(name=user, mac=r.mac, ip=r.ip, port=stations[r.mac],
                                  authenticated=True, idle_timeout=self.idle_timeout))
                taken_ips.add(r.ip)
        for r in rules:
            if r.user_name in anchors:
                continue
            port = stations.get(r.mac)
            chain = [hops.get(i) for i in (r.chain or [])]
            if port is None or port not in ports.access:
                log.info("%s: %s (%s) is on no access port yet", node, r.user_name, r.mac)
                continue
            if any(h is None or h[0] != node for h in chain):
                # Chains through other nodes' NFs (a DC) are not built yet: fail closed.
                log.warning("%s: %s's chain %s is not all local: not steered", node,
                            r.user_name, r.chain)
                continue
            local = [(h[1], h[2]) for h in chain if h is not None]
            default, classifiers = split_chain(local, (classes or {}).get(r.user_name) or [])
            users.append(User(name=r.user_name, mac=r.mac, ip=r.ip, port=port,
                              authenticated=True, idle_timeout=self.idle_timeout,
                              chain=default, classifiers=classifiers))
            if r.ip:
                taken_ips.add(r.ip)
        known = {u.mac for u in users}
        for mac, port in sorted(stations.items()):
            if mac in known or port not in ports.access:
                continue
            ip = ports.leases.get(mac)
            users.append(User(name=UNKNOWN_CLIENT + mac, mac=mac, port=port,
                              ip=ip if ip not in taken_ips else None))
            if ip:
                taken_ips.add(ip)
        svc = None
        if ports.services is not None:
            svc = AccessServices(port=ports.services.port, mac=ports.services.mac,
                                 ip=ports.services.ip)
        return SwitchState(node=node, role="cpe", uplink=ports.uplink,
                           access_ports=tuple(ports.access), infra_ports=tuple(ports.infra),
                           services=svc, users=tuple(users), anchored=tuple(anchored))

    def _core(self, node: str, role: str, ports: SwitchPorts, rules: Iterable[Any],
              anchors: dict[str, tuple[Any, str]]) -> SwitchState:
        to_node = {peer: port for port, peer in ports.links.items() if port != ports.uplink}
        locations = []
        seen: set[str] = set()
        for r in rules:
            port = to_node.get(r.node_name)
            if port is None or r.mac in seen:
                continue
            seen.add(r.mac)
            anchor = None
            if r.user_name in anchors and r.ip:
                visited = to_node.get(anchors[r.user_name][1])
                if visited is not None and visited != port:
                    port, anchor = visited, port
            locations.append(Location(user=r.user_name, mac=r.mac, ip=r.ip, port=port,
                                      anchor=anchor))
        infra = list(ports.infra) + ([ports.uplink] if ports.uplink else [])
        return SwitchState(node=node, role=role, infra_ports=tuple(sorted(set(infra))),  # type: ignore[arg-type]
                           locations=tuple(locations))

    # -- publishing -------------------------------------------------------------------------
    def affected(self, node: str) -> list[str]:
        """A change at a CPE also changes the switches above it (locations)."""
        out = [node]
        for other, p in self.ports.items():
            if other != node and node in p.links.values():
                out.append(other)
        return out

    async def publish(self, node: str, force: bool = False) -> int | None:
        """Publish the node's state if it changed (or force); its generation, or None."""
        try:
            state = self.state_for(node)
        except (ValidationError, ValueError) as exc:
            log.error("switch %s: cannot build its state: %s", node, exc)
            return None
        if state is None:
            return None
        prev = self._published.get(node)
        if not force and prev is not None and \
                prev.model_copy(update={"generation": 0}) == state:
            return prev.generation
        self._gen += 1
        state = state.model_copy(update={"generation": self._gen})
        self._published[node] = state
        anchored_now = {loc.user for loc in state.locations if loc.anchor is not None}
        for user in [u for u, cores in self._anchor_core.items()
                     if node in cores and u not in anchored_now]:
            # That move is over: the next one must wait for its own anchor.
            self._anchor_gen.pop(user, None)
            self._anchor_core.pop(user, None)
        for loc in state.locations:
            if loc.anchor is not None and (prev is None or loc not in prev.locations):
                self._anchor_gen[loc.user] = self._gen
                self._anchor_core[loc.user] = {node}
        if self.nc is not None:
            await self.nc.publish(subjects.controller_desired(node),
                                  state.model_dump_json().encode())
        return self._gen

    async def apply(self, node: str, timeout: float = 3.0) -> list[SwitchSynced]:
        """Publish the node's state (and the switches above it) and wait for the controller
        to confirm each; what it reported (nothing for switches it did not confirm in time)."""
        gens = {n: await self.publish(n) for n in self.affected(node)}
        return await self._wait(gens, timeout)

    async def apply_anchor(self, user: str, visited: str, timeout: float = 2.0) -> None:
        """A user just associated at `visited` while their NFs run elsewhere: anchor their
        traffic there (the old CPE and the core first, confirmed), then let them out at the
        visited CPE. Make-before-break: served by the old NFs, with their state, until the
        new ones are steered."""
        with self.db.session() as s:
            olds = list(s.scalars(sa.select(SteeringRule.node_name).where(
                SteeringRule.user_name == user, SteeringRule.desired.is_(True))))
        first = [n for n in dict.fromkeys(olds) if n != visited]
        if not first:
            return  # nothing to anchor to: the plan's steering lets the user out
        for n in list(first):
            first += [x for x in self.affected(n) if x not in first and x != visited]
        gens = {n: await self.publish(n) for n in first}
        await self._wait(gens, timeout)
        await self.apply(visited, timeout)

    async def _wait(self, gens: dict[str, int | None], timeout: float) -> list[SwitchSynced]:
        """Until the controller has confirmed each switch's generation (or the timeout); the
        reports of those it confirmed."""
        reports: list[SwitchSynced] = []
        waits = []
        for n, gen in gens.items():
            done = self._synced.get(n)
            if gen is None:
                continue
            if done is not None and done.generation >= gen:
                reports.append(done)
                continue
            fut: asyncio.Future[SwitchSynced] = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(n, []).append((gen, fut))
            waits.append(fut)
        if waits:
            finished, pending = await asyncio.wait(waits, timeout=timeout)
            for f in pending:
                f.cancel()
            reports += [f.result() for f in finished]
        return reports

    def summary(self) -> list[dict[str, Any]]:
        out = []
        for node in sorted(set(self._published) | set(self.ports)):
            st, rep = self._published.get(node), self._synced.get(node)
            out.append({
                "node": node,
                "generation": st.generation if st else None,
                "synced_generation": rep.generation if rep else None,
                "in_sync": bool(st and rep and rep.generation >= st.generation),
                "users": [u.name for u in st.users] if st else [],
                "anchored": [a.name for a in st.anchored] if st else [],
                "locations": [loc.model_dump() for loc in st.locations] if st else [],
                "ts_rules": [r.rule_id for r in st.ts_rules] if st else [],
                "last_sync": ({"added": rep.added, "deleted": rep.deleted,
                               "unchanged": rep.unchanged} if rep else None),
                "errors": rep.errors if rep else [],
                "skipped": rep.skipped if rep else [],
            })
        return out

    async def publish_all(self) -> None:
        with self.db.session() as s:
            nodes = list(s.scalars(sa.select(Node.name).order_by(Node.name)))
        for n in nodes:
            await self.publish(n, force=True)
