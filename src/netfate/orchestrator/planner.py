"""The coordinator's planner: pure. Given the engine's intents (or a direct lifecycle request)
and the facts read about the instances they touch, it returns the ordered steps of each
lifecycle operation occurrence, with the steps that undo it on failure; `executor.Executor`
runs them. No database, no bus, no clock here.

An occurrence runs `steps` in order. If one raises, `undo` runs (a `Retract` push is skipped
when the agent it would go to is the one that did not answer: its next registration or
reconciliation converges it), and the operation ends ROLLED_BACK (or FAILED when
`rolled_back` is false). If all pass, `commit` runs and the operation ends COMPLETED.
Make-before-break migration: the NF comes up on the destination and takes the source's
exported state before the source is released (after the plan's new steering when deferred).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from netfate.engine import Intent, Migrate, Place, Release, Steer, Unsteer


# -- steps -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Want:
    """Desired state: the instance present on `node`, from the NF's newest bundle, with
    `config` (None: the owner's configuration of that NF)."""

    node: str
    owner: str
    nf: str
    iid: str
    config: dict[str, Any] | None = None
    # The implementation the engine's resolver chose (None: resolve when recording).
    flavour: str | None = None
    # The operator placed it (a migration through the API): the policy keeps it there.
    pinned: bool = False


@dataclass(frozen=True)
class Drop:
    """Desired state: the instance absent (an instance already gone is fine). With
    `owner` and `nf` (an undo of this occurrence's own Want): only if the instance is that
    NF of that owner. Another owner's NF whose names join to the same id (owner 'm-rate'
    with NF 'limiter', owner 'm' with NF 'rate-limiter') is not this occurrence's to drop:
    its Want was refused for it (probe of 2026-12-06)."""

    iid: str
    owner: str | None = None
    nf: str | None = None


@dataclass(frozen=True)
class Configure:
    """Desired state: the instance's configuration."""

    iid: str
    config: dict[str, Any]


@dataclass(frozen=True)
class Push:
    """Send `node` its desired state and check the agent's reply: `expect` "running" (the
    instance `iid` runs), "gone" (it is not reported) or "ok" (the agent applied it). `lap`
    names the time since the previous lap (the operation's timings)."""

    node: str
    expect: Literal["running", "gone", "ok"]
    iid: str = ""
    lap: str | None = None


# Flavours whose compute driver live-migrates (its `live_migrate` capability; the agent
# checks the driver itself before anything moves).
LIVE_FLAVOURS = frozenset({"vm"})


@dataclass(frozen=True)
class MoveState:
    """Export the NF's state on `src` and import it into `new_iid` on `dst` (laps "export"
    and "import")."""

    src: str
    iid: str
    dst: str
    new_iid: str
    # The source runs in a flavour whose driver can live-migrate (the VM flavour): the
    # executor tries that first, and falls back to export/import if the target can't.
    live: bool = False


@dataclass(frozen=True)
class RestoreState:
    """Failover: import the last checkpoint of `iid` (orchestrator/checkpoints.py) into
    `new_iid` on `dst`, best effort (lap "restore"): its node is gone, so its state can no
    longer be exported; without a checkpoint, or if the import fails, the NF starts afresh."""

    iid: str
    dst: str
    new_iid: str


@dataclass(frozen=True)
class Retract:
    """Undo: push `node` its (restored) desired state, to undo what its agent may have
    half-made; best effort, skipped when that agent is the one that did not answer."""

    node: str


@dataclass(frozen=True)
class ReleaseSource:
    """Commit: push `node` its desired state (the source NF removed), best effort; deferred
    to the end of the plan (after its new steering) when `deferred`."""

    node: str
    deferred: bool = False


@dataclass(frozen=True)
class Fail:
    """The operation cannot run (what it names is gone): fails it with `reason`."""

    reason: str


Step = (Want | Drop | Configure | Push | MoveState | RestoreState | Retract | ReleaseSource
        | Fail)


@dataclass(frozen=True)
class Occurrence:
    """One lifecycle operation occurrence's steps. `holds_steering`: the user whose steering
    must stay as it is when this fails (a migration that did not happen, or an NF of their
    chain that could not be placed: steering them to a chain naming an NF that does not
    exist recorded a rule as installed that the controller never built, and the portal
    told the device it was online; probe of 2026-12-06)."""

    op_id: str
    title: str  # the failure's title (RFC 7807)
    steps: tuple[Step, ...]
    undo: tuple[Step, ...] = ()
    commit: tuple[Step, ...] = ()
    rolled_back: bool = True
    timings: bool = False
    holds_steering: str | None = None


@dataclass(frozen=True)
class SteerStep:
    """The controller steers `user` at `node` through `chain` (instance ids)."""

    user: str
    node: str
    chain: tuple[str, ...]
    mac: str | None = None
    ip: str | None = None


@dataclass(frozen=True)
class UnsteerStep:
    user: str
    node: str


Planned = Occurrence | SteerStep | UnsteerStep


# -- facts ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InstanceFacts:
    """What the planner needs to know about an existing instance."""

    node: str
    owner: str
    nf: str
    config: dict[str, Any] = field(default_factory=dict)
    exportable: bool = False  # its descriptor says its state can be exported
    node_online: bool = True
    flavour: str = "native"   # the flavour it runs in


# -- operations -------------------------------------------------------------------------------
def instantiate(op_id: str, node: str, owner: str, nf: str, iid: str,
                config: dict[str, Any] | None = None, flavour: str | None = None
                ) -> Occurrence:
    """Create and start (in `flavour`, None: the resolver's choice): rolled back (absent
    again) if it does not come up."""
    return Occurrence(op_id, "instantiation failed",
                      steps=(Want(node, owner, nf, iid, config, flavour),
                             Push(node, "running", iid)),
                      undo=(Drop(iid, owner, nf), Retract(node)))


def terminate(op_id: str, iid: str, node: str | None) -> Occurrence:
    """Remove (`node` None: the instance is already gone, nothing to do). Not rolled back:
    the desired state says absent and the node converges to it when its agent is back."""
    if node is None:
        return Occurrence(op_id, "termination not confirmed", steps=())
    return Occurrence(op_id, "termination not confirmed",
                      steps=(Drop(iid), Push(node, "gone", iid)), rolled_back=False)


def update(op_id: str, iid: str, node: str, old: dict[str, Any],
           config: dict[str, Any]) -> Occurrence:
    """Reconfigure while running: the old configuration comes back on failure."""
    return Occurrence(op_id, "update failed",
                      steps=(Configure(iid, config), Push(node, "ok", iid)),
                      undo=(Configure(iid, old), Retract(node)))


def migrate(op_id: str, iid: str, facts: InstanceFacts | None, dst: str, new_iid: str,
            deferred: bool = False, flavour: str | None = None,
            pinned: bool = False) -> Occurrence:
    """Make before break: up on `dst` (in `flavour`, None: the resolver's choice; it may
    differ from the source's, since the state document is flavour-independent), the state
    moved when the NF exports it and its node is online (restored from its last checkpoint
    when the node is offline: a failover), then the source released (at the end of the plan
    when `deferred`). `pinned`: the operator's move; the new instance stays on `dst` while
    it can serve its user from there (the policy's chooser)."""
    if facts is None:
        return Occurrence(op_id, "migration failed",
                          steps=(Fail(f"NF instance {iid!r} does not exist"),),
                          rolled_back=False)
    steps: list[Step] = [Want(dst, facts.owner, facts.nf, new_iid, dict(facts.config),
                              flavour, pinned),
                         Push(dst, "running", new_iid, lap="instantiate")]
    if facts.exportable and facts.node_online:
        steps.append(MoveState(facts.node, iid, dst, new_iid,
                               live=facts.flavour in LIVE_FLAVOURS))
    elif facts.exportable:
        steps.append(RestoreState(iid, dst, new_iid))
    return Occurrence(op_id, "migration failed", steps=tuple(steps),
                      undo=(Drop(new_iid, facts.owner, facts.nf), Retract(dst)),
                      commit=(Drop(iid), ReleaseSource(facts.node, deferred)),
                      timings=True)


def plan_steps(intents: Sequence[Intent], ops: Sequence[str | None],
               facts: Mapping[str, InstanceFacts]) -> list[Planned | None]:
    """Each intent's occurrence or steering step, in the plan's order (None for an intent
    with nothing to run: a lifecycle intent without an operation occurrence). `facts`: what
    was read about the instances the intents migrate or release (an instance missing from it
    does not exist)."""
    out: list[Planned | None] = []
    for it, op_id in zip(intents, ops, strict=True):
        match it:
            case Place() if op_id:
                out.append(replace(instantiate(op_id, it.node, it.user, it.nf,
                                               it.instance_id, flavour=it.flavour),
                                   holds_steering=it.user))
            case Migrate() if op_id:
                occ = migrate(op_id, it.instance_id, facts.get(it.instance_id), it.dst,
                              it.new_instance_id, deferred=True, flavour=it.flavour)
                out.append(replace(occ, holds_steering=it.user))
            case Release() if op_id:
                f = facts.get(it.instance_id)
                out.append(terminate(op_id, it.instance_id, f.node if f else None))
            case Steer():
                out.append(SteerStep(it.user, it.node, tuple(it.chain), it.mac, it.ip))
            case Unsteer():
                out.append(UnsteerStep(it.user, it.node))
            case _:
                out.append(None)
    return out


def touched(intents: Sequence[Intent]) -> list[str]:
    """The instances whose facts `plan_steps` needs (those migrated or released)."""
    return [it.instance_id for it in intents if isinstance(it, Migrate | Release)]
