"""The snapshot the orchestrator should see once an event is recorded and its plan applied. Pure.

For what-if questions, benchmarks with simulated agents, and tests that run the engine over a
sequence of events. It assumes every intent succeeds, new instances run at once, and an NF uses
exactly its catalogue memory (CPU readings only change with telemetry).
"""

from __future__ import annotations

from netfate.engine.events import (
    Event,
    NodeDown,
    NodeTelemetry,
    NodeUp,
    UserAssociated,
    UserIdle,
)
from netfate.engine.intents import Migrate, Place, Plan, Release
from netfate.engine.model import InstanceView, NodeView, Snapshot, after_node_event


def record_event(snap: Snapshot, event: Event) -> Snapshot:
    """What the orchestrator writes down about the event itself, before any plan runs."""
    match event:
        case UserAssociated():
            user = snap.user(event.user)
            if user is None:
                return snap
            return snap.with_user(user.model_copy(update={
                "access_node": event.node, "mac": event.mac or user.mac,
                "ip": event.ip or user.ip, "session_active": True, "last_seen": snap.now,
            }))
        case UserIdle():
            user = snap.user(event.user)
            if user is None or event.stale_for(user.access_node, user.last_seen) is not None:
                return snap
            # The access node is kept: it is where the (now removed) steering was.
            return snap.with_user(user.model_copy(update={"session_active": False}))
        case NodeTelemetry():
            node = snap.node(event.node)
            if node is None:
                return snap
            return snap.with_node(node.model_copy(update={
                "cpu_util": event.cpu_util, "mem_free_mb": event.mem_free_mb,
                "nf_count": event.nf_count,
            }))
        case NodeDown() | NodeUp():
            node = snap.node(event.node)
            if node is None:
                return snap
            return snap.with_node(after_node_event(node, isinstance(event, NodeUp)))
        case _:
            # Disassociation and Reconcile record nothing the engine reads.
            return snap


def apply_plan(snap: Snapshot, plan: Plan) -> Snapshot:
    """`snap` after every Place/Migrate/Release in `plan` succeeded (steering isn't recorded)."""
    instances = {i.instance_id: i for i in snap.instances}
    mem = {n.name: n.mem_free_mb for n in snap.nodes}
    nfs = {n.name: n.nf_count for n in snap.nodes}

    def claim(node: str, nf: str, sign: int) -> None:
        entry = snap.entry(nf)
        if node in mem:
            mem[node] -= sign * (entry.memory_mb if entry is not None else 0)
            nfs[node] += sign

    def drop(instance_id: str) -> None:
        old = instances.pop(instance_id, None)
        if old is not None:
            claim(old.node, old.nf, -1)

    def start(instance_id: str, user: str, nf: str, node: str) -> None:
        drop(instance_id)  # a Place may reuse the id of a failed instance it replaces
        instances[instance_id] = InstanceView(
            instance_id=instance_id, nf=nf, owner=user, node=node, state="running")
        claim(node, nf, +1)

    for intent in plan.intents:
        if isinstance(intent, Place):
            start(intent.instance_id, intent.user, intent.nf, intent.node)
        elif isinstance(intent, Migrate):
            drop(intent.instance_id)
            start(intent.new_instance_id, intent.user, intent.nf, intent.dst)
        elif isinstance(intent, Release):
            drop(intent.instance_id)

    nodes = tuple(_with_usage(n, mem[n.name], nfs[n.name]) for n in snap.nodes)
    return Snapshot(nodes=nodes, users=snap.users, instances=tuple(instances.values()),
                    catalogue=snap.catalogue, now=snap.now)


def step(snap: Snapshot, event: Event, plan: Plan) -> Snapshot:
    """Record the event, then apply its plan: the next snapshot in a simulated run."""
    return apply_plan(record_event(snap, event), plan)


def _with_usage(node: NodeView, mem_free_mb: int, nf_count: int) -> NodeView:
    return node.model_copy(update={
        "mem_free_mb": max(0, min(node.mem_total_mb, mem_free_mb)),
        "nf_count": max(0, nf_count),
    })
