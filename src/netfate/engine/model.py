"""What the engine sees: a frozen snapshot of nodes, users, NF instances and the catalogue. Pure.

The orchestrator builds a `Snapshot` from the NFVI database (the NetFATE paper's Tables I-III)
and the latest telemetry. Time is `Snapshot.now`: the engine never reads a clock.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from netfate import resolver
from netfate.flavours import DEFAULT_FLAVOUR, check_flavour
from netfate.naming import check_token
from netfate.owners import OwnerKind, check_user_name, owner_kind
from netfate.validators import unicast_mac


def _name(value: str) -> str:
    return check_token("name", value)


def _mac(value: str | None) -> str | None:
    if value is None:
        return None
    return unicast_mac(value)  # a station's: no group MAC, ASCII only (netfate.validators)


def _ip(value: str | None) -> str | None:
    if value is None:
        return None
    return str(ipaddress.ip_address(value))


# Names end up in instance ids and resource names, hence the strict alphabet (naming.py).
Name = Annotated[str, AfterValidator(_name)]
# A user's name: a Name that is not the operator's reserved owner (netfate.owners).
UserName = Annotated[str, AfterValidator(_name), AfterValidator(check_user_name)]
Flavour = Annotated[str, AfterValidator(check_flavour)]
Mac = Annotated[str | None, AfterValidator(_mac)]
Ip = Annotated[str | None, AfterValidator(_ip)]
Role = Literal["cpe", "pe", "dc"]
InstanceState = Literal["pending", "running", "failed", "releasing"]
# States in which an instance serves (or is about to serve) its user.
LIVE_STATES: frozenset[str] = frozenset({"pending", "running"})


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UserAtNode(Frozen):
    """What an event or intent about one user's access at one node names."""

    user: Name
    node: Name


class NodeView(Frozen):
    """An NFVI node (CPE, PE or DC) with its latest readings."""

    name: Name
    role: Role
    online: bool = True
    # Marked down by the operator (PATCH /nodes/{name}): up, its switch serving its users,
    # but out of placement: no NF is placed there, and those there move (with their state).
    admin_down: bool = False
    capabilities: frozenset[str] = frozenset()
    mem_total_mb: int = Field(ge=0)  # 0: not reported yet (counts as full)
    mem_free_mb: int = Field(ge=0)
    cpu_util: float = Field(ge=0.0, le=1.0)
    nf_count: int = Field(default=0, ge=0)
    max_nfs: int | None = Field(default=None, ge=0)
    # The flavours it has compute drivers for (its capability report).
    flavours: frozenset[Flavour] = frozenset({DEFAULT_FLAVOUR})
    # Free disk for NF images, MB (None: not reported; images are then not checked).
    disk_free_mb: int | None = Field(default=None, ge=0)
    # CPUs it has for NFs (None: not reported; CPU caps are then not checked).
    cpus: float | None = Field(default=None, gt=0)
    # The node above it (its uplink's far end: a CPE's PE), as its agent reports it.
    parent: Name | None = None
    # The nodes its switch has a tunnel to (the overlay, issue 11); None: not reported (an
    # agent of before the overlay), which restricts nothing.
    tunnels: frozenset[str] | None = None

    def reaches(self, other: str) -> bool:
        """Whether a chain from this node can cross `other`'s NFs (itself, or a tunnel)."""
        return other == self.name or self.tunnels is None or other in self.tunnels

    @property
    def mem_util(self) -> float:
        return mem_util(self.mem_total_mb, self.mem_free_mb)


def after_node_event(node: NodeView, up: bool) -> NodeView:
    """The node's view after a NodeUp (`up`) or a NodeDown. A NodeDown of a node the
    operator marked down while it is online leaves it online: its switch still serves the
    users who enter there, so they are steered on to their NFs' new nodes, and the NFs
    leave it by live migration (their state kept), not as from a node that was lost."""
    if not up and node.admin_down and node.online:
        return node
    return node.model_copy(update={"online": up})


def mem_util(total_mb: int, free_mb: int) -> float:
    """Used share of memory, clamped to 0..1 (a reading may briefly exceed the total)."""
    if total_mb <= 0:
        return 1.0  # unknown capacity: host nothing rather than divide by zero
    return min(1.0, max(0.0, (total_mb - free_mb) / total_mb))


class Implementation(Frozen):
    """One flavour of an NF and what it needs there (the descriptor's `implementations`)."""

    flavour: Flavour
    memory_mb: int = Field(ge=0)
    cpu_percent: int = Field(default=100, ge=0)
    disk_mb: int = Field(default=0, ge=0)

    def as_resolver(self) -> resolver.Implementation:
        return resolver.Implementation(self.flavour, self.memory_mb, self.cpu_percent,
                                       self.disk_mb)


class CatalogueEntry(Frozen):
    """What an NF type needs from a node (from its descriptor)."""

    name: Name
    # Capability names in netfate.resolver.capability_key form ("iptables", "kernel:xfrm").
    capabilities: frozenset[str] = frozenset()
    memory_mb: int = Field(ge=0)
    # A cgroup cap (percent of one CPU), not a usage forecast: policies don't add it to cpu_util.
    cpu_percent: int = Field(default=100, ge=0)
    # The flavours it ships, in order of preference (the descriptor's `flavours`).
    flavours: tuple[Flavour, ...] = Field(default=(DEFAULT_FLAVOUR,), min_length=1)
    # One instance per node for every user who requires it (the descriptor's `shared`).
    shared: bool = False

    # Per flavour requirements; empty: each of `flavours` with memory_mb and cpu_percent.
    implementations: tuple[Implementation, ...] = ()

    @property
    def offers(self) -> tuple[resolver.Implementation, ...]:
        """Its implementations, in its order of preference, as the resolver takes them."""
        if self.implementations:
            return tuple(i.as_resolver() for i in self.implementations)
        return tuple(resolver.Implementation(f, self.memory_mb, self.cpu_percent)
                     for f in self.flavours)

    def resolve(self, node: NodeView, fit: resolver.Fit | None = None) -> resolver.Resolution:
        """Which of its implementations runs on `node` (netfate.resolver.resolve with the
        selected rule); `fit` as there."""
        return resolver.resolve(self.offers, self.capabilities, node, fit=fit)

    def flavour_on(self, node: NodeView) -> str | None:
        """The flavour it runs in on `node`, by the resolver with the node's free memory;
        None: no implementation runs there."""
        return self.resolve(node).flavour


class UserView(Frozen):
    """A user (Table I): the chain they require, where they are, and whether they are active."""

    name: UserName
    required_nfs: tuple[Name, ...] = ()
    access_node: Name | None = None
    mac: Mac = None
    ip: Ip = None
    last_seen: float | None = None
    session_active: bool = False
    # The nodes where the user has steering rules (Table III): a plan that steers them at
    # their access node unsteers the others (a roam or a fault can leave one behind).
    steered_at: tuple[Name, ...] = ()

    @field_validator("required_nfs")
    @classmethod
    def _unique_nfs(cls, nfs: tuple[str, ...]) -> tuple[str, ...]:
        # Instance ids are per (node, user, NF), so a chain can't cross the same NF twice; drop
        # repeats rather than fail the whole snapshot over one user's record.
        return tuple(dict.fromkeys(nfs))


class InstanceView(Frozen):
    """An NF instance (Table II) as the orchestrator last recorded it."""

    instance_id: str = Field(min_length=1, max_length=200)
    nf: Name
    owner: Name
    node: Name
    state: InstanceState
    # The users whose traffic crosses it (Table II's active users); of a shared NF, its
    # owner is whoever it was first placed for.
    users: tuple[Name, ...] = ()
    # The operator placed it (a migration through the API): a policy keeps it where it is
    # while it can serve its user from there.
    pinned: bool = False

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def owner_kind(self) -> OwnerKind:
        """"operator" for an operator-owned instance (a troubleshooting probe, say): no
        user's, so never in a user's view (netfate.owners)."""
        return owner_kind(self.owner)


class Snapshot(Frozen):
    """The world as the orchestrator knows it when an event arrives."""

    nodes: tuple[NodeView, ...] = ()
    users: tuple[UserView, ...] = ()
    instances: tuple[InstanceView, ...] = ()
    catalogue: tuple[CatalogueEntry, ...] = ()
    now: float = 0.0

    # Indexes built once; policies look things up per user and per node.
    _nodes: dict[str, NodeView] = PrivateAttr(default_factory=dict)
    _users: dict[str, UserView] = PrivateAttr(default_factory=dict)
    _entries: dict[str, CatalogueEntry] = PrivateAttr(default_factory=dict)
    _by_owner: dict[str, tuple[InstanceView, ...]] = PrivateAttr(default_factory=dict)
    _by_node: dict[str, tuple[InstanceView, ...]] = PrivateAttr(default_factory=dict)
    _joined: dict[str, tuple[InstanceView, ...]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _unique(self) -> Snapshot:
        for what, names in (
            ("node", [n.name for n in self.nodes]),
            ("user", [u.name for u in self.users]),
            ("catalogue entry", [c.name for c in self.catalogue]),
            ("instance", [i.instance_id for i in self.instances]),
        ):
            dupes = _duplicates(names)
            if dupes:
                raise ValueError(f"duplicate {what} names in snapshot: {dupes}")
        return self

    def model_post_init(self, context: object, /) -> None:
        self._nodes = {n.name: n for n in self.nodes}
        self._users = {u.name: u for u in self.users}
        self._entries = {c.name: c for c in self.catalogue}
        by_owner: dict[str, list[InstanceView]] = {}
        by_node: dict[str, list[InstanceView]] = {}
        for i in self.instances:
            by_owner.setdefault(i.owner, []).append(i)
            by_node.setdefault(i.node, []).append(i)
        self._by_owner = {k: tuple(v) for k, v in by_owner.items()}
        self._by_node = {k: tuple(v) for k, v in by_node.items()}
        joined: dict[str, list[InstanceView]] = {}
        for i in self.instances:
            e = self._entries.get(i.nf)
            # An operator-owned NF may carry a user's traffic (a probe in their path); it is
            # still not theirs: a user's convergence must neither keep nor release it.
            if e is not None and e.shared and i.owner_kind == "user":
                for u in i.users:
                    if u != i.owner:
                        joined.setdefault(u, []).append(i)
        self._joined = {k: tuple(v) for k, v in joined.items()}

    def node(self, name: str | None) -> NodeView | None:
        return self._nodes.get(name) if name is not None else None

    def user(self, name: str) -> UserView | None:
        return self._users.get(name)

    def entry(self, nf: str) -> CatalogueEntry | None:
        return self._entries.get(nf)

    def instances_of(self, user: str) -> tuple[InstanceView, ...]:
        return self._by_owner.get(user, ())

    def instances_on(self, node: str) -> tuple[InstanceView, ...]:
        return self._by_node.get(node, ())

    def serving(self, user: str) -> tuple[InstanceView, ...]:
        """The user's own instances, and the shared ones they use (of another owner)."""
        return self.instances_of(user) + self._joined.get(user, ())

    def shared_on(self, node: str, nf: str) -> InstanceView | None:
        """The live instance of shared NF `nf` on `node` (None: there is none)."""
        return next((i for i in sorted(self.instances_on(node), key=lambda i: i.instance_id)
                     if i.nf == nf and i.live), None)

    def is_online(self, node: str) -> bool:
        """Unknown nodes count as offline: an instance there can't be reached."""
        view = self._nodes.get(node)
        return view is not None and view.online

    def dc_nodes(self) -> tuple[NodeView, ...]:
        return tuple(n for n in self.nodes if n.role == "dc")

    def with_node(self, node: NodeView) -> Snapshot:
        """This snapshot with one node's view replaced (or added)."""
        nodes = tuple(node if n.name == node.name else n for n in self.nodes)
        if node.name not in self._nodes:
            nodes += (node,)
        return self._replace(nodes=nodes)

    def with_user(self, user: UserView) -> Snapshot:
        users = tuple(user if u.name == user.name else u for u in self.users)
        if user.name not in self._users:
            users += (user,)
        return self._replace(users=users)

    def _replace(self, **fields: object) -> Snapshot:
        # A fresh model (not model_copy) so the indexes are rebuilt.
        data: dict[str, object] = {
            "nodes": self.nodes,
            "users": self.users,
            "instances": self.instances,
            "catalogue": self.catalogue,
            "now": self.now,
        }
        data.update(fields)
        return Snapshot.model_validate(data)


def _duplicates(names: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    dupes: list[str] = []
    for n in names:
        if n in seen and n not in dupes:
            dupes.append(n)
        seen.add(n)
    return dupes
