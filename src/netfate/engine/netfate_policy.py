"""The default policy, "netfate": NFs at the user's access node, then the PE above it, then
the DC. Pure.

- NetFATE paper, III.C and IV: each NF a user requires runs on their access CPE; it follows them
  when they log in elsewhere and is released when their traffic goes idle. Section V: chains
  at the CPE and the PE.
- GNF paper, IV.B: when the edge can't host an NF (capability or load), it goes to the central
  DC; placement is re-evaluated when a node's utilisation moves by 15% or more. Each NF of a
  chain is placed on its own, so a chain may be split (GNF Fig. 4: firewall on the CPE,
  inspector in the DC); re-evaluation moves NFs back toward the edge when room appears.
- Issue 11: only nodes the access node has a tunnel to can host its users' NFs (a node with no
  route is refused, with the reason in the plan).

A disassociation alone changes nothing: Wi-Fi roaming disassociates before associating
elsewhere, and releasing then would throw away the state a migration is meant to keep. NFs go
on idle (the paper's rule) or move on re-association.
"""

from __future__ import annotations

from netfate.engine import events
from netfate.engine.capacity import EPSILON, Ledger, Thresholds, dc_key, placement
from netfate.engine.converge import Chooser, Decision, PlanBuilder, converge_user, release_user
from netfate.engine.intents import Plan, Release
from netfate.engine.model import (
    CatalogueEntry,
    InstanceView,
    NodeView,
    Snapshot,
    UserAtNode,
    UserView,
    after_node_event,
)
from netfate.resolver import Implementation


class NetfatePolicy:
    """Edge first, DC fallback, follow the user, release on idle."""

    # A user event reads only that user, their instances and nodes, the event's node and the
    # DC nodes; a node event, the users at or with NFs on that node, likewise. The
    # orchestrator may then build the snapshot for just that part of the world (see
    # docs/policies.md).
    snapshot_scope = "event"

    def __init__(
        self,
        *,
        name: str = "netfate",
        cpu_threshold: float = 0.8,
        mem_threshold: float = 0.85,
        reevaluate_delta: float = 0.15,
        idle_timeout: float | None = None,
    ) -> None:
        for label, value in (
            ("cpu_threshold", cpu_threshold),
            ("mem_threshold", mem_threshold),
            ("reevaluate_delta", reevaluate_delta),
        ):
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{label} must be in (0, 1], not {value}")
        if idle_timeout is not None and idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, not {idle_timeout}")
        self.name = name
        self.thresholds = Thresholds(cpu=cpu_threshold, mem=mem_threshold)
        self.reevaluate_delta = reevaluate_delta
        # Backstop for lost idle events: on Reconcile, a user unseen this long is idle.
        self.idle_timeout = idle_timeout

    def plan(self, snap: Snapshot, event: events.Event) -> Plan:
        out = PlanBuilder()
        match event:
            case events.UserAssociated():
                self._associated(snap, event, out)
            case events.UserDisassociated():
                self._disassociated(snap, event, out)
            case events.UserIdle():
                self._idle(snap, event, out)
            case events.NodeTelemetry():
                self._telemetry(snap, event, out)
            case events.NodeDown() | events.NodeUp():
                self._node_state(snap, event, out)
            case events.Reconcile():
                self._reconcile(snap, out)
        return out.build()

    # -- events ------------------------------------------------------------------------------

    def _associated(self, snap: Snapshot, ev: events.UserAssociated, out: PlanBuilder) -> None:
        user = _user_at_known_node(snap, ev, out)
        if user is None:
            return
        mac = ev.mac or user.mac
        ip = ev.ip or user.ip
        joined = user.model_copy(update={
            "access_node": ev.node, "mac": mac, "ip": ip,
            "session_active": True, "last_seen": snap.now,
        })
        ledger = Ledger(snap)
        # Steering is restated on every association, even when no NF moves: the device has
        # just (re)joined the access switch, the engine can't see its flows, and Steer is
        # idempotent.
        # A roam: only what must move moves (issue 11). An NF on the old CPE follows the
        # user; one on a PE or in the DC stays where it is and only the steering changes.
        roam = user.session_active and user.access_node not in (None, ev.node)
        converge_user(
            snap, joined, self._chooser(snap, joined, ledger, roam=roam), ledger, out,
            previous_access=user.access_node if user.session_active else None,
            force_steer=True,
        )
        if not out.intents:
            out.note(f"{ev.user} at {ev.node}: nothing to change")

    def _disassociated(
        self, snap: Snapshot, ev: events.UserDisassociated, out: PlanBuilder
    ) -> None:
        user = _user_at_known_node(snap, ev, out)
        if user is None:
            return
        if user.access_node != ev.node:
            out.note(f"{ev.user} left {ev.node} but is associated at {user.access_node}: stale")
        else:
            out.note(f"{ev.user} left {ev.node}: NFs kept until idle or re-association")

    def _idle(self, snap: Snapshot, ev: events.UserIdle, out: PlanBuilder) -> None:
        user = _known_user(snap, ev.user, out)
        if user is None:
            return
        stale = ev.stale_for(user.access_node, user.last_seen)
        if stale is not None:
            out.note(stale)  # the user roamed meanwhile: their association's plan decides
            return
        # Unsteer too when the session is already marked over but NFs remain: steering into
        # them would outlive them.
        live = any(i.state != "releasing" for i in snap.instances_of(user.name))
        release_user(snap, user, f"{user.name} {ev.why}", out,
                     unsteer=user.session_active or live)
        if not out.intents:
            out.note(f"{user.name} already idle")

    def _telemetry(self, snap: Snapshot, ev: events.NodeTelemetry, out: PlanBuilder) -> None:
        old = snap.node(ev.node)
        if old is None:
            out.note(f"telemetry from unknown node {ev.node}: ignored")
            return
        new = old.model_copy(update={
            "cpu_util": ev.cpu_util, "mem_free_mb": ev.mem_free_mb, "nf_count": ev.nf_count,
        })
        d_cpu = abs(new.cpu_util - old.cpu_util)
        d_mem = abs(new.mem_util - old.mem_util)
        summary = (f"{ev.node}: cpu {old.cpu_util:.2f}->{new.cpu_util:.2f}, "
                   f"memory {old.mem_util:.2f}->{new.mem_util:.2f}")
        if max(d_cpu, d_mem) < self.reevaluate_delta - EPSILON:
            out.note(f"{summary}: change below {self.reevaluate_delta:.2f}, not re-evaluated")
            return
        out.note(f"{summary}: re-evaluating")
        self._reevaluate(snap.with_node(new), ev.node, out)

    def _node_state(
        self, snap: Snapshot, ev: events.NodeDown | events.NodeUp, out: PlanBuilder
    ) -> None:
        node = snap.node(ev.node)
        if node is None:
            out.note(f"unknown node {ev.node}: nothing to do")
            return
        up = isinstance(ev, events.NodeUp)
        out.note(f"{ev.node} is {'up' if up else 'down'}: re-evaluating")
        self._reevaluate(snap.with_node(after_node_event(node, up)), ev.node, out,
                         down=None if up else ev.node)

    def _reevaluate(self, snap: Snapshot, node: str, out: PlanBuilder,
                    down: str | None = None) -> None:
        """Re-place the chains touching `node`: its access users and users with NFs on it.
        `down`: the node that failed; only what ran there moves (an NF on another node
        that is up keeps serving, e.g. a user anchored there while their new access node
        is the one that failed)."""
        names = {u.name for u in snap.users if u.access_node == node}
        names |= {i.owner for i in snap.instances_on(node) if i.live}
        names |= {u for i in snap.instances_on(node) if i.live for u in i.users}
        ledger = Ledger(snap)
        for name in sorted(names):
            user = snap.user(name)
            if user is not None and _active(user):
                choose = self._chooser(snap, user, ledger)
                if down is not None:
                    choose = _unless_unaffected(choose, snap, down)
                converge_user(snap, user, choose, ledger, out)

    def _reconcile(self, snap: Snapshot, out: PlanBuilder) -> None:
        """Everything, level-triggered: converge active users (restating their steering, which
        the engine can't see), end inactive sessions, release orphans."""
        ledger = Ledger(snap)
        for user in sorted(snap.users, key=lambda u: u.name):
            if _active(user):
                if self._timed_out(snap, user):
                    release_user(snap, user, f"{user.name} unseen for {self.idle_timeout}s",
                                 out, unsteer=True)
                else:
                    converge_user(snap, user, self._chooser(snap, user, ledger), ledger, out,
                                  force_steer=True)
            elif user.session_active:
                out.note(f"{user.name} has a session but no access node: left as is")
            elif any(i.state != "releasing" for i in snap.instances_of(user.name)):
                release_user(snap, user, f"{user.name} has no active session", out, unsteer=True)
        for i in snap.instances:
            # An operator-owned NF (a troubleshooting probe) has no user: the operation that
            # deployed it removes it, never the users' reconciliation.
            if i.state != "releasing" and i.owner_kind == "user" and snap.user(i.owner) is None:
                out.intents.append(Release(user=i.owner, nf=i.nf, instance_id=i.instance_id,
                                           node=i.node, reason=f"owner {i.owner} unknown"))

    def _timed_out(self, snap: Snapshot, user: UserView) -> bool:
        return (self.idle_timeout is not None and user.last_seen is not None
                and snap.now - user.last_seen >= self.idle_timeout)

    # -- placement ---------------------------------------------------------------------------

    def _chooser(self, snap: Snapshot, user: UserView, ledger: Ledger,
                 roam: bool = False) -> Chooser:
        th = self.thresholds
        access = snap.node(user.access_node)

        def choose(
            entry: CatalogueEntry, current: InstanceView | None, chain_nodes: tuple[str, ...]
        ) -> Decision:
            what = f"{entry.name} for {user.name}"
            now = snap.node(current.node) if current is not None else None
            if (current is not None and current.pinned and now is not None
                    and not _misfits(access, now, entry, ledger, th, current)[0]):
                # The operator's placement stands while the node can serve the user
                # (up, not marked down, reachable from their access node, not overloaded).
                return Decision(now.name, f"{what} stays on {now.name}, where the operator "
                                          "placed it")
            if (roam and now is not None and now.role in ("pe", "dc")
                    and not _misfits(access, now, entry, ledger, th, current)[0]):
                return Decision(now.name, f"{what} stays on {now.role.upper()} {now.name} "
                                          "while the user roams: only the steering changes")
            if access is None:
                not_access = f"access node {user.access_node} unknown"
            else:
                hosted = current is not None and current.node == access.name
                problems, impl = placement(access, entry, ledger, th, hosted=hosted)
                if not problems:
                    return _decision(access.name, f"{what} on access node {access.name}", impl)
                not_access = f"access node {access.name}: {', '.join(problems)}"
            here = snap.node(current.node) if current is not None else None
            rejected = [not_access]
            pe = snap.node(access.parent) if access is not None else None
            if pe is not None and pe.role == "pe":
                problems, impl = _misfits(access, pe, entry, ledger, th, current)
                if not problems:
                    return _decision(pe.name, f"{what} on PE {pe.name} ({not_access})", impl)
                rejected.append(f"PE {pe.name}: {', '.join(problems)}")
            if (here is not None and here.role == "dc"
                    and not _misfits(access, here, entry, ledger, th, current)[0]):
                # Stay put rather than hop between DCs whenever another one is a bit lighter.
                return Decision(here.name, f"{what} stays in DC {here.name} ({not_access})")
            for dc in _dcs_by_preference(snap, ledger, chain_nodes, exclude=here):
                problems, impl = _misfits(access, dc, entry, ledger, th, None)
                if not problems:
                    return _decision(dc.name, f"{what} in DC {dc.name} ({not_access})", impl)
                rejected.append(f"DC {dc.name}: {', '.join(problems)}")
            if len(rejected) == 1:
                rejected.append("no other DC node")
            return Decision(None, "no node fits: " + "; ".join(rejected))

        return choose


def _decision(node: str, why: str, impl: Implementation | None) -> Decision:
    """A decision with the implementation the resolver picked there, when there is one."""
    if impl is None:
        return Decision(node, why)
    return Decision(node, why, impl.flavour, impl.memory_mb)


def _unless_unaffected(choose: Chooser, snap: Snapshot, down: str) -> Chooser:
    """`choose`, but an NF already running on a node other than `down` that is up stays."""

    def chooser(entry: CatalogueEntry, current: InstanceView | None,
                chain_nodes: tuple[str, ...]) -> Decision:
        if current is not None and current.node != down and snap.is_online(current.node):
            return Decision(current.node, f"{entry.name} stays on {current.node} "
                                          f"({down} is down)")
        return choose(entry, current, chain_nodes)

    return chooser


def _misfits(access: NodeView | None, node: NodeView, entry: CatalogueEntry, ledger: Ledger,
             th: Thresholds, current: InstanceView | None
             ) -> tuple[list[str], Implementation | None]:
    """Why `node` can't host the NF for a user at `access` (its own misfits, or no route,
    i.e. tunnel, from the access node to it), and else the implementation the resolver
    picks there."""
    if access is not None and not access.reaches(node.name):
        return [f"no route from {access.name} (no tunnel)"], None
    hosted = current is not None and current.node == node.name
    return placement(node, entry, ledger, th, hosted=hosted)


def _active(user: UserView) -> bool:
    return user.session_active and user.access_node is not None


def _dcs_by_preference(
    snap: Snapshot, ledger: Ledger, chain_nodes: tuple[str, ...], exclude: NodeView | None
) -> list[NodeView]:
    dcs = [n for n in snap.dc_nodes() if exclude is None or n.name != exclude.name]
    return sorted(dcs, key=lambda n: dc_key(n, ledger, chain_nodes))


def _known_user(snap: Snapshot, name: str, out: PlanBuilder) -> UserView | None:
    """The user called `name`; None, noted as nothing to do, if the snapshot has none."""
    user = snap.user(name)
    if user is None:
        out.note(f"unknown user {name}: nothing to do")
    return user


def _user_at_known_node(snap: Snapshot, ev: UserAtNode, out: PlanBuilder) -> UserView | None:
    """The event's user if both they and its node are known; None, noted, otherwise."""
    user = _known_user(snap, ev.user, out)
    if user is not None and snap.node(ev.node) is None:
        out.note(f"unknown node {ev.node}: nothing to do for {ev.user}")
        return None
    return user
