"""The orchestrator's side of the SDN controller: reads the world, decides each switch's
desired state with the pure `switch_state`, publishes it on the bus and waits for the
controller's confirmations. Any switch also carries the TS rules (Table I) an operator put
at its node.


States are published whole (level-triggered), with a generation; `apply` waits until the
controller confirms the generation (its barrier) so a plan's next step knows the flows are in.
What the agents report about their switches (ports, stations) and what the controller
confirms are kept here in memory; everything else is read from the database, off the event
loop, in one read per publication.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.orm import Session

from netfate.bus import subjects
from netfate.bus.messages import Command, SwitchPorts, SwitchSynced
from netfate.controller.model import SwitchState
from netfate.counters import REGISTRY, STATIONS_EVICTED
from netfate.db import repo
from netfate.db.models import SteeringRule
from netfate.db.repo.switching import switching_records
from netfate.db.session import Database
from netfate.orchestrator import switch_scope
from netfate.orchestrator.anchors import Anchors
from netfate.orchestrator.datapaths import Datapaths
from netfate.orchestrator.switch_state import (
    UNKNOWN_CLIENT,
    World,
    newest_stations,
    split_chain,
    switch_state,
)
from netfate.validators import unicast_mac

log = logging.getLogger("netfate.orchestrator.switches")

__all__ = ["UNKNOWN_CLIENT", "Switches", "split_chain"]

# A switch's datapath forwards by its cached flows until the revalidators have been through
# them (hundreds of ms here), after the controller's barrier: an anchor is made or broken
# only once the switch that changed first forwards by its new flows. Its agent purges the
# cache and replies (SETTLE_TIMEOUT_S); one that does not answer is given REVALIDATE_S, the
# revalidators' own bound (ovs-vswitchd other_config:max-revalidator, 500 ms by default).
SETTLE_TIMEOUT_S = 1.0
REVALIDATE_S = 0.5
SYNC_TIMEOUT_S = 2.0


@dataclasses.dataclass(eq=False)
class _Batch:
    """Publication requests coalesced into one read of the world (`Switches.publish_many`)."""

    nodes: dict[str, None] = dataclasses.field(default_factory=dict)  # ordered set
    force: bool = False
    started: bool = False
    task: asyncio.Future[dict[str, int | None]] | None = None


_Q_STEERED_AT = (sa.select(SteeringRule.node_name, SteeringRule.chain)
                 .where(SteeringRule.user_name == sa.bindparam("user"),
                        SteeringRule.desired.is_(True))
                 .order_by(SteeringRule.node_name, SteeringRule.user_name))


def _steered_with_chain(s: Session, user: str) -> list[str]:
    """The nodes of the user's desired steering rules whose chain crosses an NF, in node
    order (repo.list_steering's, as Core rows: every roam asks)."""
    return [node for node, chain in s.connection().execute(_Q_STEERED_AT, {"user": user})
            if chain]


class Switches:
    def __init__(self, db: Database, nc: Any, idle_timeout: int = 60,
                 max_hosts_per_port: int = 32, max_hosts_per_node: int = 256,
                 dhcp_pps: int = 0) -> None:
        self.db = db
        self.nc = nc
        self.idle_timeout = idle_timeout
        self.max_hosts_per_port = max_hosts_per_port
        self.max_hosts_per_node = max_hosts_per_node
        self.dhcp_pps = dhcp_pps
        self.ports: dict[str, SwitchPorts] = {}
        # node -> MAC -> port (controller), oldest first; bounded by the max_hosts caps
        self.seen: dict[str, dict[str, str]] = {}
        # Generations grow across orchestrator restarts (ms clock), so a controller never
        # takes a new state for an old one.
        self._gen = int(time.time() * 1000) & 0x7FFFFFFF
        self._published: dict[str, SwitchState] = {}
        self._synced: dict[str, SwitchSynced] = {}
        self._waiters: dict[str, list[tuple[int, asyncio.Future[SwitchSynced]]]] = {}
        self.anchors = Anchors()
        self.datapaths = Datapaths()
        self._confirmed: dict[str, int] = {}  # node -> newest generation the controller confirmed
        self._retries: set[asyncio.Task[Any]] = set()
        # Publications one at a time: each reads the world after the previous one was sent,
        # so a state read before a change never overtakes one read after it.
        self._publishing = asyncio.Lock()
        self._next: _Batch | None = None  # the batch of requests not yet started
        # Reads are numbered; a node's last publication is from read number _pub_read[node].
        # publish_all builds from one older read in slices, and skips a node published from
        # a newer read meanwhile.
        self._reads = 0
        self._pub_read: dict[str, int] = {}
        # Whether a controller has ever spoken (hello or a confirmation): until then nothing
        # waits for confirmations no one would send.
        self.controller_seen = False

    # -- inputs -----------------------------------------------------------------------------
    def set_ports(self, node: str, ports: SwitchPorts) -> None:
        self.ports[node] = ports

    def client_seen(self, node: str, mac: str, port: str) -> bool:
        """The controller saw DHCP from `mac` on `port`: remember it (newest last); whether
        that changed anything. Group MACs are refused (ValueError). Memory stays bounded:
        beyond the max_hosts caps the oldest stations not logged in are forgotten (a
        logged-in user's, per the last published state, never)."""
        mac = unicast_mac(mac)
        known = self.seen.setdefault(node, {})
        same = known.pop(mac, None) == port
        known[mac] = port  # newest last
        if same:
            return False
        self._evict(node, known)
        return True

    def _evict(self, node: str, known: dict[str, str]) -> None:
        st = self._published.get(node)
        keep = {u.mac for u in st.users if u.authenticated} if st is not None else set()
        if st is not None:
            keep |= {a.mac for a in st.anchored}
        mine = [(m, p) for m, p in known.items() if m not in keep]
        kept = set(newest_stations(mine, self.max_hosts_per_port, self.max_hosts_per_node))
        for mac, port in mine:
            if (mac, port) not in kept:
                del known[mac]
                REGISTRY.inc(STATIONS_EVICTED, node=node)
                log.info("switch %s: forgot station %s on %s (max_hosts)", node, mac, port)

    def synced(self, report: SwitchSynced) -> None:
        self.controller_seen = True
        last = self._synced.get(report.node)
        if last is None or report.generation >= last.generation:  # a late one is not news
            self._synced[report.node] = report
        self._confirmed[report.node] = max(self._confirmed.get(report.node, -1),
                                           report.generation)
        cores = self.anchors.released_by(report.node, report.generation)
        if cores:  # anchors held for want of this CPE's confirmation may end now
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to retry on
                t = asyncio.get_running_loop().create_task(self.publish_many(cores))
                self._retries.add(t)
                t.add_done_callback(self._retries.discard)
        waiters = self._waiters.get(report.node, [])
        for gen, fut in list(waiters):
            if report.generation >= gen and not fut.done():
                fut.set_result(report)
        self._waiters[report.node] = [(g, f) for g, f in waiters if not f.done()]
        if report.errors or report.skipped:
            log.warning("switch %s generation %d: errors %s, left out %s", report.node,
                        report.generation, report.errors, report.skipped)

    def anchor_ready(self, user: str) -> bool:
        """Whether the core has confirmed (and settled) the anchor of this user's traffic:
        until then the visited CPE must not let the user out (it would bypass their NFs)."""
        return self.anchors.ready(user, self._confirmed)

    # -- the world and the desired states ---------------------------------------------------
    def world(self, records: repo.SwitchingRecords) -> World:
        """The database's records with what the agents and the controller reported."""
        return World(records=records, ports=dict(self.ports),
                     seen={n: dict(m) for n, m in self.seen.items()},
                     anchors_ready=self._anchors_ready(), idle_timeout=self.idle_timeout,
                     max_hosts_per_port=self.max_hosts_per_port,
                     max_hosts_per_node=self.max_hosts_per_node, dhcp_pps=self.dhcp_pps)

    def _anchors_ready(self) -> frozenset[str]:
        return self.anchors.all_ready(self._confirmed)

    async def read_world(self, nodes: Iterable[str] | None = None) -> World:
        """One repository read (in a database thread), plus the reports kept here: all of
        it, or what the states of `nodes` depend on (the nodes below a core included)."""
        self._reads += 1
        if nodes is None:
            return self.world(await self.db.read(switching_records))
        return self.world(await self.db.read(switching_records,
                                             switch_scope.with_links(self.ports, nodes)))

    async def state_for(self, node: str) -> SwitchState | None:
        """The node's desired state as it stands (generation 0); None for an unknown node."""
        return switch_state(await self.read_world([node]), node)

    # -- publishing -------------------------------------------------------------------------
    def affected(self, node: str) -> list[str]:
        """The switches a change at `node` changes, in publication order
        (`switch_scope.affected`)."""
        return switch_scope.affected(self.ports, node)

    async def publish(self, node: str, force: bool = False) -> int | None:
        """Publish the node's state if it changed (or force); its generation, or None."""
        return (await self.publish_many([node], force))[node]

    async def publish_many(self, nodes: Iterable[str], force: bool = False
                           ) -> dict[str, int | None]:
        """Publish each node's state (in order) from one read of the world; their
        generations (None: no state). Requests made while a publication runs are coalesced:
        they join the next batch, which reads the world once for all their nodes, after all
        their changes (level-triggered: the newest state is what counts). Under load this
        keeps reads of the world to one per publication slot, not one per request."""
        nodes = list(dict.fromkeys(nodes))
        batch = self._next
        if batch is None or batch.started:
            batch = self._next = _Batch()
            batch.task = asyncio.ensure_future(self._run_batch(batch))
            # Retrieved even when every caller was cancelled (no "never retrieved" warning).
            batch.task.add_done_callback(lambda t: t.cancelled() or t.exception())
        batch.nodes.update(dict.fromkeys(nodes))
        batch.force = batch.force or force
        assert batch.task is not None
        # Shielded: a cancelled caller does not cancel the batch others wait on.
        out = await asyncio.shield(batch.task)
        return {n: out.get(n) for n in nodes}

    async def _run_batch(self, batch: _Batch) -> dict[str, int | None]:
        async with self._publishing:
            batch.started = True  # later requests start the next batch
            if self._next is batch:
                self._next = None
            nodes = list(batch.nodes)
            seq = self._reads + 1  # this read's number
            world = await self.read_world(nodes)
            out: dict[str, int | None] = {}
            for n in nodes:
                # Anchors confirmed as of this node's turn (a core published just before may
                # have started or ended one).
                out[n] = await self._publish(
                    dataclasses.replace(world, anchors_ready=self._anchors_ready()), n,
                    batch.force, seq)
            return out

    async def _publish(self, world: World, node: str, force: bool, seq: int) -> int | None:
        """Build the node's state from `world` (read number `seq`) and publish it if it
        changed (or force); its generation, or None for no state. A core's state that ends
        anchors is published only once the CPEs that let those users out raw forward by
        their own new states (`_break_anchors`)."""
        try:
            state = switch_state(world, node)
        except (ValidationError, ValueError) as exc:
            log.error("switch %s: cannot build its state: %s", node, exc)
            return None
        if state is None:
            return None
        self._pub_read[node] = seq
        prev = self._published.get(node)
        if not force and prev is not None and \
                prev.model_copy(update={"generation": 0}) == state:
            return prev.generation
        ended = self.anchors.ending(node, state)
        if ended and prev is not None:  # (it anchored them, so it has a state)
            held = await self._break_anchors(world, ended, seq)
            self.anchors.end(u for u in ended if u not in held)
            if held:
                state = self.anchors.hold(state, prev, held)
                if not force and prev.model_copy(update={"generation": 0}) == state:
                    return prev.generation
        state = await self._send(node, state)
        self.anchors.made(node, state, prev, world.records.anchors)
        return state.generation

    async def _send(self, node: str, state: SwitchState) -> SwitchState:
        """Number `state` with the next generation, keep it as the node's and publish it."""
        self._gen += 1
        state = state.model_copy(update={"generation": self._gen})
        self._published[node] = state
        if self.nc is not None:
            await self.nc.publish(subjects.controller_desired(node),
                                  state.model_dump_json().encode())
        return state

    async def _resend(self, node: str) -> int | None:
        """The node's last published state again, under a new generation (its content, and
        so its anchors, unchanged); None if it has none."""
        prev = self._published.get(node)
        return None if prev is None else (await self._send(node, prev)).generation

    async def _break_anchors(self, world: World, users: list[str], seq: int) -> set[str]:
        """Before a core stops diverting `users` through the CPE running their NFs: the
        CPEs that let them out by the uplink with no NF take their new states (their own
        chain, or none), confirmed and settled. The other order leaves a window in which
        their raw traffic reaches the core with no anchor to catch it, and the core forwards
        it like any CPE's traffic: a fail-open (2 of 5 CI runs on 2026-12-03). Returns the
        users to keep anchored: a CPE of theirs did not confirm (anchors.py)."""
        visits = self.anchors.visited_by(users)
        visited = sorted(set().union(*visits.values()))
        if not visited:
            return set()
        gens = {v: await self._publish(world, v, False, seq) for v in visited}
        # A CPE already known not to confirm this generation is not waited for again (the
        # publications lock is held): its confirmation retries the core (`synced`).
        await self._wait({v: g for v, g in gens.items()
                          if self.anchors.unconfirmed.get(v) != g}, SYNC_TIMEOUT_S)
        late = {v: g for v, g in gens.items() if g is not None and self.controller_seen
                and self._confirmed.get(v, -1) < g}
        self.anchors.unconfirmed.update(late)
        if late:
            log.warning("switches %s did not confirm their new states: their users' anchors "
                        "are kept (their traffic is not let out without their NFs)",
                        sorted(late))
        await self.settle({v: g for v, g in gens.items() if v not in late})
        return {u for u, vs in visits.items() if vs & late.keys()}

    async def settle(self, gens: dict[str, int | None]) -> None:
        """Have each node's datapath forward by the generation given (None: nothing to
        settle): its agent purges the cached flows on the controller's report and says so
        (datapaths.Datapaths); one that has not said so is asked to, and one that does not
        answer that in SETTLE_TIMEOUT_S costs REVALIDATE_S (the revalidators catch up on
        their own), once for all. Without a controller (or a bus) nothing was installed,
        so nothing to wait for."""
        todo = self.anchors.to_settle(gens)
        if todo and self.nc is not None and self.controller_seen:
            ask = await self.datapaths.wait(todo)
            body = Command(op="settle").model_dump_json().encode()
            results = await asyncio.gather(
                *(self.nc.request(subjects.command(n), body, timeout=SETTLE_TIMEOUT_S)
                  for n in ask), return_exceptions=True)
            failed = [n for n, r in zip(ask, results, strict=True)
                      if isinstance(r, BaseException)]
            if failed:
                log.warning("switches %s: no agent settled the datapath in %.1f s; waiting "
                            "%.1f s for the revalidators", failed, SETTLE_TIMEOUT_S,
                            REVALIDATE_S)
                await asyncio.sleep(REVALIDATE_S)
        self.anchors.mark_settled(todo)

    async def apply(self, node: str, timeout: float = 3.0) -> list[SwitchSynced]:
        """Publish the node's state (and the switches above it) and wait for the controller
        to confirm each; what it reported (nothing for switches it did not confirm in time)."""
        gens = await self.publish_many(self.affected(node))
        return await self._wait(gens, timeout)

    async def apply_anchor(self, user: str, visited: str, timeout: float = 2.0) -> None:
        """A user just associated at `visited` while their NFs run elsewhere: anchor their
        traffic there (the old CPE and the core first, confirmed), then let them out at the
        visited CPE. Make-before-break: served by the old NFs, with their state, until the
        new ones are steered. A user whose steering crosses no NF has nothing to anchor
        (records' `anchors` leave them out): no publication, the plan's Steer lets them out."""
        olds = await self.db.read(_steered_with_chain, user)
        first = [n for n in dict.fromkeys(olds) if n != visited]
        if not first:
            return  # nothing to anchor to: the plan's steering lets the user out
        for n in list(first):
            first += [x for x in self.affected(n) if x not in first and x != visited]
        gens = await self.publish_many(first)
        await self._wait(gens, timeout)
        # The cores' datapaths forward by the anchor before the visited CPE lets them out.
        await self.settle({n: g for n, g in gens.items()
                           if n in self.anchors.cores.get(user, ())})
        await self.apply(visited, timeout)

    async def _wait(self, gens: dict[str, int | None], timeout: float) -> list[SwitchSynced]:
        """Until the controller has confirmed each switch's generation (or the timeout); the
        reports of those it confirmed. With no controller ever heard of, nothing to wait
        for."""
        reports: list[SwitchSynced] = []
        if not self.controller_seen:
            return reports
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

    async def publish_all(self, slice_size: int = 50) -> None:
        """Every node's state, forced (a controller came up, or the orchestrator started):
        from one read of the world, linear in its records, in slices that let the event
        loop (the API, agents' messages, other publications) run in between. A node
        published from a newer read meanwhile is skipped (its state is newer)."""
        t0 = time.perf_counter()
        async with self._publishing:
            seq = self._reads + 1
            world = await self.read_world()
        nodes = sorted(world.records.roles)
        for k in range(0, len(nodes), slice_size):
            async with self._publishing:
                for n in nodes[k:k + slice_size]:
                    if self._pub_read.get(n, -1) > seq:
                        # A newer read made (or found unchanged) the node's last state:
                        # that one goes out again, not this older read's. Skipping it lost
                        # a state sent before the controller resubscribed (CI, 2026-12-05).
                        await self._resend(n)
                        continue
                    await self._publish(
                        dataclasses.replace(world, anchors_ready=self._anchors_ready()), n,
                        True, seq)
            await asyncio.sleep(0)
        log.info("every switch state published (%d) in %.1f s", len(nodes),
                 time.perf_counter() - t0)
