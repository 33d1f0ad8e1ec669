"""What to do: the intents a plan is made of. Pure.

The NF coordinator turns Place/Migrate/Release into driver operations and the controller turns
Steer/Unsteer into flows. Within a plan, intents for one user come in the order they should be
applied: placements and migrations (make before break), then Steer, then Unsteer, then Release.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from pydantic import Field, TypeAdapter

from netfate.engine.model import Flavour, Frozen, Ip, Mac, Name, UserAtNode
from netfate.flavours import DEFAULT_FLAVOUR

Id = Annotated[str, Field(min_length=1, max_length=200)]


class _UsersNf(Frozen):
    """What every intent about one of a user's NF instances names."""

    user: Name
    nf: Name
    instance_id: Id
    reason: str = ""


class Place(_UsersNf):
    """Create and start an NF instance for a user on a node."""

    kind: Literal["place"] = "place"
    node: Name
    # The first of the NF's flavours that the node hosts.
    flavour: Flavour = DEFAULT_FLAVOUR


class Migrate(_UsersNf):
    """Move a user's NF from src to dst: create on dst, carry the state over, delete on src."""

    kind: Literal["migrate"] = "migrate"
    src: Name
    dst: Name
    new_instance_id: Id
    # True when src is down or unknown: there is no state to export, start dst fresh.
    state_lost: bool = False
    # The flavour on dst (the state document is flavour-independent, so it may differ).
    flavour: Flavour = DEFAULT_FLAVOUR


class Release(_UsersNf):
    """Stop and delete an NF instance."""

    kind: Literal["release"] = "release"
    node: Name


class Steer(UserAtNode):
    """Send the user's traffic, entering at `node`, through `chain` (instance ids, in order).

    The instances may live on other nodes (a DC, say): the controller builds the path.
    """

    kind: Literal["steer"] = "steer"
    chain: tuple[Id, ...]
    mac: Mac = None
    ip: Ip = None


class Unsteer(UserAtNode):
    """Remove the user's steering rules at `node`."""

    kind: Literal["unsteer"] = "unsteer"


Intent = Annotated[
    Place | Migrate | Release | Steer | Unsteer,
    Field(discriminator="kind"),
]
INTENT_ADAPTER: TypeAdapter[Intent] = TypeAdapter(Intent)

_I = TypeVar("_I", Place, Migrate, Release, Steer, Unsteer)


class Unplaced(Frozen):
    """A required NF the plan could not place: the caller records a failed operation."""

    user: Name
    nf: Name
    reason: str


class Plan(Frozen):
    """The engine's answer: intents to apply, and why (for the operator and the logs)."""

    intents: tuple[Intent, ...] = ()
    reasons: tuple[str, ...] = ()
    unplaced: tuple[Unplaced, ...] = ()

    @classmethod
    def empty(cls, *reasons: str) -> Plan:
        return cls(reasons=reasons)

    @property
    def is_empty(self) -> bool:
        return not self.intents

    def of(self, kind: type[_I]) -> tuple[_I, ...]:
        """The intents of one class, in plan order."""
        return tuple(i for i in self.intents if isinstance(i, kind))
