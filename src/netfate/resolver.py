"""The resolver: which implementation (flavour) of a generic NF runs on a node. Pure.

The NNF paper (section III, "the VNF resolver"; section III-C) separates *what* runs from *how*:
the orchestrator asks a node for a generic NF ("firewall") and a resolver picks one of its
implementations from what the node advertises: the flavours it runs (infrastructure
capabilities: native, container, vm), its functional capabilities (tools, kernel features,
hardware) and its available resources (free memory, disk). The NF brings its requirements:
per implementation memory, CPU and disk, and the capabilities it depends on (netfate.descriptor).

Both the engine (when it places or migrates, netfate.engine.capacity) and the orchestrator (when
it records an instance, netfate.orchestrator.flavour) call `resolve`: one place decides.

Which runnable implementation wins is a `Rule`, pluggable like placement policies: built-in
rules are registered here, others come through the entry-point group `netfate.resolvers`
(see `get_rule`). The default, "nnf", is the paper's: native where it fits (a 256 MB CPE),
container in the DC, VM where the NF exists only as a VM. "first" takes the NF's own order of
preference (the descriptor's `flavours`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Protocol, runtime_checkable

from netfate import plugins
from netfate.errors import UnknownName

ENTRY_POINT_GROUP = "netfate.resolvers"
DEFAULT_RULE = "nnf"

# Capability kinds (the NNF paper's "dependencies": software packages; and, as its section III-C
# allows, kernel features and hardware). A package capability is its bare name ("iptables"),
# the others are prefixed ("kernel:xfrm", "hardware:aes-ni") so names never collide.
KINDS = ("package", "kernel", "hardware")
# Flavours that bring their own user space (a package dependency is inside the image) or their
# own kernel too (a VM). Any other flavour, native included, runs on the host's.
OWN_USERSPACE = frozenset({"container", "vm"})
OWN_KERNEL = frozenset({"vm"})


def capability_key(name: str, kind: str = "package") -> str:
    """The name a node advertises for a capability: `name` for a package, `kind:name`
    otherwise. ValueError for an unknown kind."""
    if kind not in KINDS:
        raise ValueError(f"capability kind {kind!r} is not one of {', '.join(KINDS)}")
    return name if kind == "package" else f"{kind}:{name}"


def capability_kind(key: str) -> str:
    """The kind of an advertised capability name ("package" when it has no known prefix)."""
    prefix, sep, _ = key.partition(":")
    return prefix if sep and prefix in KINDS else "package"


def needed_on_host(key: str, flavour: str) -> bool:
    """Whether a capability the NF depends on must be on the node itself to run `flavour`:
    packages for flavours that use the host's user space, kernel features unless the flavour
    brings its own kernel, hardware always."""
    kind = capability_kind(key)
    if kind == "package":
        return flavour not in OWN_USERSPACE
    if kind == "kernel":
        return flavour not in OWN_KERNEL
    return True


@dataclass(frozen=True)
class Implementation:
    """One flavour of an NF with what it needs: memory (MB, a cgroup limit the node must have
    free), CPU (percent of one CPU, a cap, not a reservation) and disk (MB of image, 0:
    negligible)."""

    flavour: str
    memory_mb: int = 32
    cpu_percent: int = 100
    disk_mb: int = 0


@runtime_checkable
class NodeOffer(Protocol):
    """What a node advertises (netfate.engine.NodeView has all of it)."""

    @property
    def name(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def flavours(self) -> Collection[str]: ...
    @property
    def capabilities(self) -> Collection[str]: ...
    @property
    def mem_total_mb(self) -> int: ...
    @property
    def mem_free_mb(self) -> int: ...
    @property
    def disk_free_mb(self) -> int | None: ...
    @property
    def cpus(self) -> float | None: ...


@dataclass(frozen=True)
class Resolution:
    """The implementation chosen (None: none runs on the node) and, per implementation that
    could not run, why, in words ("native: 10 MB free < 16 MB"; without the prefix when the
    NF has one implementation)."""

    implementation: Implementation | None
    reasons: tuple[str, ...] = ()
    runnable: tuple[Implementation, ...] = ()

    @property
    def flavour(self) -> str | None:
        return self.implementation.flavour if self.implementation else None


# Why an implementation does not fit the node's free resources (None: it fits).
Fit = Callable[[Implementation], str | None]


@runtime_checkable
class Rule(Protocol):
    """Orders the implementations that can run on a node, best first. Pure and total."""

    @property
    def name(self) -> str: ...

    def rank(self, runnable: Sequence[Implementation], node: NodeOffer
             ) -> Sequence[Implementation]: ...


@dataclass(frozen=True)
class FirstRule:
    """The NF's own order of preference (the descriptor's `flavours`)."""

    name: str = "first"

    def rank(self, runnable: Sequence[Implementation], node: NodeOffer
             ) -> Sequence[Implementation]:
        return list(runnable)


@dataclass(frozen=True)
class NnfRule:
    """The NNF paper's rule: native where it fits (CPE, PE), container in the DC, VM last
    (where the NF exists only as a VM, or nothing lighter fits); flavours it does not know
    after those, in the NF's order."""

    name: str = "nnf"
    edge: tuple[str, ...] = ("native", "container", "vm")
    dc: tuple[str, ...] = ("container", "native", "vm")

    def rank(self, runnable: Sequence[Implementation], node: NodeOffer
             ) -> Sequence[Implementation]:
        order = self.dc if node.role == "dc" else self.edge
        known = {f: k for k, f in enumerate(order)}
        return sorted(runnable, key=lambda i: known.get(i.flavour, len(order)))  # stable


def default_fit(node: NodeOffer) -> Fit:
    """Free memory (when the node has reported it: mem_total_mb > 0), then `fits_node`."""
    def fit(impl: Implementation) -> str | None:
        if node.mem_total_mb > 0 and node.mem_free_mb < impl.memory_mb:
            return f"{node.mem_free_mb} MB free < {impl.memory_mb} MB"
        return fits_node(impl, node)
    return fit


def fits_node(impl: Implementation, node: NodeOffer) -> str | None:
    """Why `impl` can never run on `node` whatever else runs there (None: it can): its CPU cap
    spans more cores than the node has (a 2-vCPU VM, 200 %, on a one-core CPE; a cap is a
    ceiling, so 50 % on a node with a 0.1-CPU budget still runs), or its image is more than
    the node's free disk; each only when the node reports it."""
    if node.cpus is not None and impl.cpu_percent > 100 * math.ceil(node.cpus):
        return (f"needs {impl.cpu_percent}% CPU, node has {math.ceil(node.cpus)} "
                f"core{'s' if math.ceil(node.cpus) > 1 else ''}")
    if node.disk_free_mb is not None and node.disk_free_mb < impl.disk_mb:
        return f"{node.disk_free_mb} MB disk free < {impl.disk_mb} MB"
    return None


def resolve(
    implementations: Sequence[Implementation],
    needs: Collection[str],
    node: NodeOffer,
    *,
    fit: Fit | None = None,
    rule: Rule | None = None,
) -> Resolution:
    """The implementation of an NF to run on `node`.

    `implementations`: the NF's, in its order of preference. `needs`: the capability names it
    depends on (`capability_key` form). `fit`: why one does not fit the node's free resources
    (default `default_fit`; the engine passes its thresholds and what the plan already
    claimed); None skips nothing. `rule`: orders the runnable ones (default: the selected
    rule, `selected()`). An implementation is runnable when the node advertises its flavour,
    has every capability it needs on the host (`needed_on_host`) and it fits.
    """
    fit = fit or default_fit(node)
    runnable: list[Implementation] = []
    reasons: list[str] = []
    advertised = [i for i in implementations if i.flavour in node.flavours]
    if not advertised:
        names = ",".join(i.flavour for i in implementations) or "none"
        return Resolution(None, (f"runs none of its flavours {names} "
                                 f"(node has {','.join(sorted(node.flavours))})",))
    many = len(implementations) > 1
    for impl in implementations:
        if impl not in advertised:
            reasons.append(f"{impl.flavour}: not advertised by the node")
            continue
        lacking = sorted(c for c in needs
                         if needed_on_host(c, impl.flavour) and c not in node.capabilities)
        why = f"lacks capabilities {','.join(lacking)}" if lacking else fit(impl)
        if why is None:
            runnable.append(impl)
        else:
            reasons.append(f"{impl.flavour}: {why}" if many else why)
    if not runnable:
        return Resolution(None, tuple(reasons))
    ranked = list((rule or selected()).rank(runnable, node))
    best = ranked[0] if ranked and ranked[0] in runnable else runnable[0]
    return Resolution(best, tuple(reasons), tuple(runnable))


# -- the rules' registry (as netfate.engine.policy's) ---------------------------------------

RULES: dict[str, Rule] = {"nnf": NnfRule(), "first": FirstRule()}
_selected: list[str] = [DEFAULT_RULE]


def register(rule: Rule, *, replace: bool = False) -> Rule:
    """Make `rule` selectable by its name. TypeError if it is not a rule; ValueError if the
    name is taken and `replace` is false."""
    if not isinstance(rule, Rule):
        raise TypeError(f"{rule!r} is not a resolver rule: it needs a `name` and a `rank`")
    if rule.name in RULES and RULES[rule.name] is not rule and not replace:
        raise ValueError(f"a resolver rule named {rule.name!r} is already registered")
    RULES[rule.name] = rule
    return rule


def get_rule(name: str) -> Rule:
    """The rule called `name`: registered, or found through the entry points. UnknownName
    (a KeyError) naming the known ones (and why the entry points were passed over)
    otherwise."""
    if name in RULES:
        return RULES[name]

    def accept(obj: object) -> Rule:
        if isinstance(obj, type) or (callable(obj) and not isinstance(obj, Rule)):
            obj = obj()
        if not isinstance(obj, Rule):
            raise plugins.Refused("gives no `name` and `rank`")
        if obj.name != name:
            raise plugins.Refused(f"gives a rule named {obj.name!r}")
        return obj

    rule, errors = plugins.load(metadata.entry_points(group=ENTRY_POINT_GROUP), name, accept)
    if rule is not None:
        return register(rule)
    detail = "; ".join(errors)
    raise UnknownName(f"no resolver rule named {name!r} (known: {', '.join(available())})"
                      + (f"; {detail}" if detail else ""))


def available() -> list[str]:
    """Every rule that can be selected, registered or not yet loaded."""
    eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    return sorted(set(RULES) | {ep.name for ep in eps})


def select(name: str) -> Rule:
    """Make the rule `name` the one `resolve` uses by default (the orchestrator's setting
    `resolver`). KeyError as `get_rule`; the selection is unchanged then."""
    rule = get_rule(name)
    _selected[0] = name
    return rule


def selected() -> Rule:
    return get_rule(_selected[0])
