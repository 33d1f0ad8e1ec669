"""Can a node host an NF? Fit checks and the capacity a plan has already claimed. Pure.

A `Ledger` lives for one `plan()` call. It adds what the plan places on each node to the node's
readings, so two NFs don't both claim the last slot. Departures are not credited back:
migration is make-before-break, so the source holds its memory until the plan is applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netfate import resolver
from netfate.engine.model import CatalogueEntry, NodeView, Snapshot, mem_util

# Readings are floats: 0.65 - 0.5 is 0.1499..., which must still count as a 15% change.
EPSILON = 1e-9


@dataclass(frozen=True)
class Thresholds:
    cpu: float = 0.8
    mem: float = 0.85


@dataclass
class Ledger:
    snap: Snapshot
    _mem_mb: dict[str, int] = field(default_factory=dict)
    _nfs: dict[str, int] = field(default_factory=dict)

    def reserve(self, node: str, entry: CatalogueEntry, memory_mb: int | None = None) -> None:
        """Claim a slot and `memory_mb` (default: the entry's) on `node` for this plan."""
        need = entry.memory_mb if memory_mb is None else memory_mb
        self._mem_mb[node] = self._mem_mb.get(node, 0) + need
        self._nfs[node] = self._nfs.get(node, 0) + 1

    def mem_free(self, node: NodeView) -> int:
        return node.mem_free_mb - self._mem_mb.get(node.name, 0)

    def nf_count(self, node: NodeView) -> int:
        return node.nf_count + self._nfs.get(node.name, 0)

    def mem_util(self, node: NodeView, extra_mb: int = 0) -> float:
        return mem_util(node.mem_total_mb, self.mem_free(node) - extra_mb)

    def load(self, node: NodeView) -> float:
        """The bottleneck resource's utilisation, with what this plan added."""
        return max(node.cpu_util, self.mem_util(node))


def misfits(
    node: NodeView, entry: CatalogueEntry, ledger: Ledger, th: Thresholds, *, hosted: bool
) -> list[str]:
    """Why `node` can't host `entry` (empty: it can); see `placement`."""
    return placement(node, entry, ledger, th, hosted=hosted)[0]


def placement(
    node: NodeView, entry: CatalogueEntry, ledger: Ledger, th: Thresholds, *, hosted: bool
) -> tuple[list[str], resolver.Implementation | None]:
    """Why `node` can't host `entry` (empty: it can), and the implementation the resolver
    picks there (netfate.resolver: the flavours the node runs, its capabilities, and for each
    implementation its memory against what is free after this plan's claims, its CPU cap and
    image against the node's CPUs and free disk).

    `hosted`: the NF already runs there, so its memory and slot are already in the readings;
    the node only has to be up, capable and not overloaded to keep it.
    """
    problems: list[str] = []
    if not node.online:
        problems.append("offline")
    elif node.admin_down:
        problems.append("marked down by the operator")

    def fit(impl: resolver.Implementation) -> str | None:
        if hosted:
            return None  # it runs there already: its resources are in the readings
        free = ledger.mem_free(node)
        if free < impl.memory_mb:
            return f"{free} MB free < {impl.memory_mb} MB"
        # Judge memory after placing, so a placement doesn't itself overload the node (and
        # trigger a migration straight back out).
        after = ledger.mem_util(node, impl.memory_mb)
        if after >= th.mem - EPSILON:
            return f"memory would reach {after:.2f} >= {th.mem:.2f}"
        return resolver.fits_node(impl, node)

    chosen = entry.resolve(node, fit)
    problems.extend(chosen.reasons if chosen.implementation is None else ())
    if node.cpu_util >= th.cpu - EPSILON:
        problems.append(f"cpu {node.cpu_util:.2f} >= {th.cpu:.2f}")
    if hosted:
        used = ledger.mem_util(node)
        if used >= th.mem - EPSILON:
            problems.append(f"memory {used:.2f} >= {th.mem:.2f}")
        return problems, chosen.implementation
    count = ledger.nf_count(node)
    if node.max_nfs is not None and count >= node.max_nfs:
        problems.append(f"{count} NFs, max {node.max_nfs}")
    return problems, chosen.implementation


def dc_key(node: NodeView, ledger: Ledger, chain_nodes: tuple[str, ...]) -> tuple[object, ...]:
    """Order DC candidates: best first, and always the same way for the same input.

    A DC already hosting part of this user's chain comes first (fewer core crossings); then
    the least loaded bottleneck resource; then fewer NFs; then more free memory; then name.
    """
    return (
        0 if node.name in chain_nodes else 1,
        round(ledger.load(node), 6),
        ledger.nf_count(node),
        -ledger.mem_free(node),
        node.name,
    )
