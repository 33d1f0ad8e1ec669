"""What happened: the events the engine plans for. Pure.

Each event is a small frozen model with a `kind` discriminator, so the bus can carry it as JSON
and `EVENT_ADAPTER.validate_json` turns it back into the right class.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from netfate.engine.model import Frozen, Ip, Mac, Name, UserAtNode


class UserAssociated(UserAtNode):
    """A user logged in at a node (captive portal login, RADIUS Access-Accept)."""

    kind: Literal["user_associated"] = "user_associated"
    mac: Mac = None
    ip: Ip = None


class UserDisassociated(UserAtNode):
    """A user's device left a node (e.g. Wi-Fi disassociation). Not the end of the session."""

    kind: Literal["user_disassociated"] = "user_disassociated"


class UserIdle(Frozen):
    """No packets from the user for the idle period (flow removed): the session is over.

    `node` and `at` (unix seconds) say where and when the idleness was seen (the controller's
    report). Both are optional (an operator's idle request names neither); when given, the
    report is checked against the user as recorded *when the plan is made*, under the user's
    plan lock: see `stale_for`."""

    kind: Literal["user_idle"] = "user_idle"
    user: Name
    node: Name | None = None
    at: float | None = None
    # Why the session ends, for the release's reason ("user1 logged out"): "idle" unless a
    # logout, a timeout, a Disconnect-Request or another login on the device ended it.
    why: str = Field(default="idle", max_length=100)

    def stale_for(self, access_node: str | None, last_seen: float | None) -> str | None:
        """Why this report no longer describes the user (None: it does). A report races the
        user's roams: the idle flow of the node they left can expire while (or after) they
        associate elsewhere, and the report then reaches the orchestrator after the new
        association was recorded. It is stale when the user is now recorded at another node,
        or was seen (associated) after the report was made (a quick move away and back)."""
        if self.node is not None and access_node != self.node:
            return f"{self.user} idle at {self.node} but now at {access_node}: stale"
        if self.at is not None and last_seen is not None and last_seen > self.at:
            return f"{self.user} idle at {self.at:.3f} but seen at {last_seen:.3f}: stale"
        return None


class _AboutNode(Frozen):
    node: Name


class NodeTelemetry(_AboutNode):
    """A node's new readings; the snapshot still holds the previous ones."""

    kind: Literal["node_telemetry"] = "node_telemetry"
    cpu_util: float = Field(ge=0.0, le=1.0)
    mem_free_mb: int = Field(ge=0)
    nf_count: int = Field(ge=0)


class NodeDown(_AboutNode):
    """The node went offline: the chains touching it are placed again without it."""

    kind: Literal["node_down"] = "node_down"


class NodeUp(_AboutNode):
    """The node came (back) online, e.g. its agent registered: the chains are re-evaluated."""

    kind: Literal["node_up"] = "node_up"


class Reconcile(Frozen):
    """Re-evaluate everything (after a restart, or periodically)."""

    kind: Literal["reconcile"] = "reconcile"


Event = Annotated[
    UserAssociated | UserDisassociated | UserIdle | NodeTelemetry | NodeDown | NodeUp | Reconcile,
    Field(discriminator="kind"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
