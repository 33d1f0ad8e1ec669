"""From a per-NF placement choice to intents: the diff between desired and recorded state. Pure.

A policy decides where each NF of a user should run (a `Chooser`); `converge_user` compares that
with the user's recorded instances and emits Place/Migrate/Release plus the Steer/Unsteer that
follow. Policies share it, so they only differ in where they put things.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from netfate.engine.intents import (
    Intent,
    Migrate,
    Place,
    Plan,
    Release,
    Steer,
    Unplaced,
    Unsteer,
)
from netfate.engine.model import CatalogueEntry, InstanceView, Snapshot, UserView
from netfate.naming import nf_instance_id

from .capacity import Ledger


@dataclass(frozen=True)
class Decision:
    """Where an NF should run (None: nowhere fits) and why, in words."""

    node: str | None
    why: str
    # The implementation the resolver picked there (None: the chooser did not say; converge
    # then asks the resolver itself).
    flavour: str | None = None
    memory_mb: int | None = None


# (catalogue entry, the instance now serving the user or None, nodes already chosen for the
# user's earlier NFs in chain order) -> decision
Chooser = Callable[[CatalogueEntry, InstanceView | None, tuple[str, ...]], Decision]


@dataclass
class PlanBuilder:
    """Collects one plan's intents and reasons; lives for one `plan()` call."""

    intents: list[Intent] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    unplaced: list[Unplaced] = field(default_factory=list)
    # Shared NFs placed by this plan, (node, NF) -> instance id: later users join them.
    shared: dict[tuple[str, str], str] = field(default_factory=dict)
    released: set[str] = field(default_factory=set)  # shared instances this plan releases

    def note(self, reason: str) -> None:
        self.reasons.append(reason)

    def fail(self, user: str, nf: str, reason: str) -> None:
        self.unplaced.append(Unplaced(user=user, nf=nf, reason=reason))
        self.note(f"{nf} for {user} not placed: {reason}")

    def build(self) -> Plan:
        return Plan(
            intents=tuple(self.intents), reasons=tuple(self.reasons), unplaced=tuple(self.unplaced)
        )


def converge_user(
    snap: Snapshot,
    user: UserView,
    choose: Chooser,
    ledger: Ledger,
    out: PlanBuilder,
    *,
    previous_access: str | None = None,
    force_steer: bool = False,
) -> None:
    """Bring one active user's chain to what `choose` wants, and steer it at the access node.

    `user` is the user as the event leaves them (new access node, MAC, IP). `previous_access`
    is where they were steered before: it gets an Unsteer when it differs. `force_steer`
    restates the steering even when nothing moved (a Reconcile, a fresh login).
    """
    # Their own instances, and the shared ones they use.
    records = [i for i in snap.serving(user.name) if i.state != "releasing"]
    moves: list[Intent] = []
    releases: list[Release] = []
    let_go = _LetGo(snap, user.name, releases, out)
    chain: list[str | None] = []
    chain_nodes: list[str] = []

    for nf in user.required_nfs:
        mine = [i for i in records if i.nf == nf]
        live = sorted(
            (i for i in mine if i.live),
            # The instance that serves the user: reachable, at the access node, running.
            key=lambda i: (
                not snap.is_online(i.node),
                i.node != user.access_node,
                i.state != "running",
                i.instance_id,
            ),
        )
        placed, kept = _place_one(snap, user, nf, live, choose, ledger, out, moves, chain_nodes)
        chain.append(placed)
        for dup in live:
            if dup is not kept and dup.instance_id != placed:
                let_go(dup, f"duplicate {nf} instance for {user.name}")
        if placed is not None:
            # A failed instance is kept while nothing replaces it, so the failure stays visible.
            for bad in mine:
                if bad.state == "failed" and bad.instance_id != placed:
                    let_go(bad, f"failed; replaced by {placed}")

    for extra in records:
        if extra.nf not in user.required_nfs:
            let_go(extra, f"{user.name} no longer requires {extra.nf}")

    out.intents.extend(moves)
    changed = bool(moves or releases or let_go.left)
    access = user.access_node
    steering = False
    if access is not None and (changed or force_steer) and not user.required_nfs \
            and snap.is_online(access):
        # No NFs: the user's traffic goes straight out, but it is steered all the same (an
        # authenticated user's port security and idle detection are the controller's).
        out.intents.append(Steer(user=user.name, node=access, chain=(), mac=user.mac,
                                 ip=user.ip))
        steering = True
    elif access is not None and (changed or force_steer) and user.required_nfs:
        ids = [c for c in chain if c is not None]
        if len(ids) != len(chain):
            # Steering past a missing NF (a firewall, say) would open the user's traffic.
            out.note(f"not steering {user.name}: chain incomplete")
        elif not snap.is_online(access):
            out.note(f"not steering {user.name}: access node {access} is offline")
        else:
            out.intents.append(
                Steer(user=user.name, node=access, chain=tuple(ids), mac=user.mac, ip=user.ip)
            )
            steering = True
    if previous_access is not None and previous_access != access:
        out.intents.append(Unsteer(user=user.name, node=previous_access))
    if steering:
        # Steering left at a node the user no longer enters at (a roam while that node's
        # agent was down, say) goes once they are steered where they are: after the Steer,
        # so a failed step before it keeps serving them from there.
        # Only access nodes (CPEs): steering at a PE or the DC serves a chain's remote hops.
        for node in user.steered_at:
            view = snap.node(node)
            if node not in (access, previous_access) and view is not None \
                    and view.role == "cpe":
                out.intents.append(Unsteer(user=user.name, node=node))
    out.intents.extend(releases)


def _place_one(
    snap: Snapshot,
    user: UserView,
    nf: str,
    live: list[InstanceView],
    choose: Chooser,
    ledger: Ledger,
    out: PlanBuilder,
    moves: list[Intent],
    chain_nodes: list[str],
) -> tuple[str | None, InstanceView | None]:
    """Decide one NF and append its Place/Migrate.

    Returns the instance id that will serve the user (None: nothing does) and the recorded
    instance it keeps or migrates from; the caller releases any other live one as a duplicate.
    """
    current = live[0] if live else None
    entry = snap.entry(nf)
    if entry is None:
        if current is not None:
            out.note(f"{nf} is not in the catalogue; leaving {current.instance_id} as is")
            chain_nodes.append(current.node)
            return current.instance_id, current
        out.fail(user.name, nf, f"{nf} is not in the catalogue")
        return None, None

    decision = choose(entry, current, tuple(chain_nodes))
    if decision.node is None:
        if current is not None and snap.is_online(current.node):
            # Never tear down a working NF for want of a better place.
            out.note(f"no better node for {nf} of {user.name} ({decision.why}); "
                     f"keeping it on {current.node}")
            chain_nodes.append(current.node)
            return current.instance_id, current
        out.fail(user.name, nf, decision.why)
        # Keep the record of an unreachable instance: its node may come back.
        return None, current

    chain_nodes.append(decision.node)
    for i in live:
        if i.node == decision.node:
            # Already there (possibly as a duplicate of `current`): keep that one.
            return i.instance_id, i
    if entry.shared:
        found = snap.shared_on(decision.node, nf)
        there = found.instance_id if found else out.shared.get((decision.node, nf))
        if there is not None:
            # NNF IV.E: one instance for every tenant; the user joins it (their steering
            # through it makes them one of its active users).
            out.note(f"{user.name} joins shared {nf} {there} on {decision.node}")
            return there, None
    new_id = nf_instance_id(decision.node, user.name, nf)
    flavour = decision.flavour or _flavour(snap, entry, decision.node)
    if entry.shared:
        out.shared[(decision.node, nf)] = new_id
    ledger.reserve(decision.node, entry, decision.memory_mb)
    if current is None or entry.shared:
        # (a shared instance never moves away from its other users: a new one is placed,
        # and the user leaves the old one)
        moves.append(Place(user=user.name, nf=nf, node=decision.node, instance_id=new_id,
                           reason=decision.why, flavour=flavour))
        return new_id, None
    lost = not snap.is_online(current.node)
    why = decision.why
    if lost:
        why += f"; {current.node} is down, NF state may be lost"
    moves.append(Migrate(user=user.name, nf=nf, instance_id=current.instance_id,
                         src=current.node, dst=decision.node, new_instance_id=new_id,
                         reason=why, state_lost=lost, flavour=flavour))
    return new_id, current


def _flavour(snap: Snapshot, entry: CatalogueEntry, node: str) -> str:
    """The flavour the NF runs in on a node its chooser did not resolve for: the resolver's
    choice (netfate.resolver), else the NF's preferred flavour (the node's agent then
    refuses it, and says why)."""
    view = snap.node(node)
    return (entry.flavour_on(view) if view is not None else None) or entry.flavours[0]


def _release(i: InstanceView, reason: str) -> Release:
    return Release(user=i.owner, nf=i.nf, instance_id=i.instance_id, node=i.node, reason=reason)


@dataclass
class _LetGo:
    """A user stops using an instance: it is released, unless it is a shared NF's and other
    users still cross it (NNF IV.E, NetFATE Table II's active users): then only the user's
    steering leaves it, and `left` says so."""

    snap: Snapshot
    user: str
    releases: list[Release]
    out: PlanBuilder
    left: list[str] = field(default_factory=list)

    def __call__(self, i: InstanceView, reason: str) -> None:
        entry = self.snap.entry(i.nf)
        shared = entry is not None and entry.shared
        others = sorted(set(i.users) - {self.user})
        if shared and others and self.snap.is_online(i.node):
            self.left.append(i.instance_id)
            self.out.note(f"{self.user} leaves shared {i.nf} {i.instance_id} ({reason}); "
                          f"kept for {len(others)} other user(s)")
        elif shared and i.instance_id in self.out.released:
            self.left.append(i.instance_id)  # (another of its users' converge releases it)
        else:
            # (on a node that is down, no one can use it: its users are all re-placed)
            if shared:
                self.out.released.add(i.instance_id)
            self.releases.append(_release(i, reason))


def release_user(
    snap: Snapshot, user: UserView, reason: str, out: PlanBuilder, *, unsteer: bool
) -> None:
    """End a user's session: Unsteer first (no traffic into dying NFs), then Release all
    (a shared NF that other users still cross is only left)."""
    doomed = [i for i in snap.serving(user.name) if i.state != "releasing"]
    if unsteer and user.access_node is not None:
        out.intents.append(Unsteer(user=user.name, node=user.access_node))
    releases: list[Release] = []
    let_go = _LetGo(snap, user.name, releases, out)
    for i in doomed:
        let_go(i, reason)
    out.intents.extend(releases)
