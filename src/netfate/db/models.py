"""The NFVI database's tables: the NetFATE paper's Tables I-III, generalised.

Table I (users) holds each user's chain and access node; Table II (vnf_instances) the NFs and
where they run; Table III (steering_rules) what the controller installs per user and node. The
rest follows ETSI SOL003 where it fits (vnf_lcm_op_occs, subscriptions).

Every timestamp is a float of Unix seconds (UTC): the same on SQLite and PostgreSQL, and
JSON-able as it is. Columns that name a node or user are ``node_name`` and ``user_name``
(``user`` is a reserved word in PostgreSQL).
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# JSONB on PostgreSQL (compact, comparable), JSON text on SQLite. Python None is SQL NULL.
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")

# Constraint names are fixed by convention, so migrations can refer to them on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def now() -> float:
    return time.time()


class NodeRole(StrEnum):
    CPE = "cpe"
    PE = "pe"
    DC = "dc"


class SessionState(StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


class Presence(StrEnum):
    PRESENT = "present"
    ABSENT = "absent"


class ActualState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"
    ABSENT = "absent"


class LcmOperation(StrEnum):
    INSTANTIATE = "INSTANTIATE"
    TERMINATE = "TERMINATE"
    MIGRATE = "MIGRATE"
    UPDATE = "UPDATE"
    RELEASE = "RELEASE"


class OpState(StrEnum):
    """SOL003 LcmOperationStateType (without STARTING: an operation starts PROCESSING)."""

    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED_TEMP = "FAILED_TEMP"
    FAILED = "FAILED"
    ROLLING_BACK = "ROLLING_BACK"
    ROLLED_BACK = "ROLLED_BACK"


def _enum(cls: type[StrEnum], name: str) -> sa.Enum:
    """A VARCHAR with a CHECK constraint holding the enum's values (no native PG enum type)."""
    return sa.Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        validate_strings=True,
        values_callable=lambda e: [m.value for m in e],
    )


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

    # Columns left out of as_dict (secrets, blobs).
    _private: ClassVar[frozenset[str]] = frozenset()

    def as_dict(self) -> dict[str, Any]:
        """The row as a JSON-able dict (enums as their values), without private columns."""
        out: dict[str, Any] = {}
        for col in self.__table__.columns:
            if col.key in self._private:
                continue
            value = getattr(self, col.key)
            out[col.key] = value.value if isinstance(value, StrEnum) else value
        return out


class Node(Base):
    """An NFVI node (CPE, PE or DC) and what its agent last reported."""

    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(sa.String, primary_key=True)
    role: Mapped[NodeRole] = mapped_column(_enum(NodeRole, "role"))
    online: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # The operator marked it down: no placement there, whatever its agent reports.
    admin_down: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    capabilities: Mapped[list[str]] = mapped_column(JSON, default=list)
    infrastructure: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    resources: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_seen: Mapped[float | None] = mapped_column(sa.Double)
    registered_at: Mapped[float] = mapped_column(sa.Double, default=now)


class User(Base):
    """Table I: a user, the NFs they require (their chain, in order) and where they attach."""

    __tablename__ = "users"
    _private = frozenset({"password_hash"})

    name: Mapped[str] = mapped_column(sa.String, primary_key=True)
    password_hash: Mapped[str] = mapped_column(sa.String)
    required_nfs: Mapped[list[str]] = mapped_column(JSON, default=list)
    nf_config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Traffic classes: [{name, priority, ip_proto, remote_port, remote, nfs}]. Matching
    # traffic crosses that class's NFs; the rest crosses the NFs no class names.
    classifiers: Mapped[list[dict[str, Any]]] = mapped_column(
        JSON, default=list, server_default="[]")
    access_node: Mapped[str | None] = mapped_column(
        sa.ForeignKey("nodes.name", ondelete="SET NULL"), index=True
    )
    mac: Mapped[str | None] = mapped_column(sa.String)
    ip: Mapped[str | None] = mapped_column(sa.String)
    framed_ip: Mapped[str | None] = mapped_column(sa.String)
    last_seen: Mapped[float | None] = mapped_column(sa.Double)
    created_at: Mapped[float] = mapped_column(sa.Double, default=now)


class UserSession(Base):
    """A user's attachment to an access node, from login to logout or release."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(sa.String, primary_key=True)
    user_name: Mapped[str] = mapped_column(
        sa.ForeignKey("users.name", ondelete="CASCADE"), index=True
    )
    node_name: Mapped[str] = mapped_column(
        sa.ForeignKey("nodes.name", ondelete="CASCADE"), index=True
    )
    mac: Mapped[str | None] = mapped_column(sa.String, index=True)  # lower case
    ip: Mapped[str | None] = mapped_column(sa.String, index=True)
    started_at: Mapped[float] = mapped_column(sa.Double, default=now)
    ended_at: Mapped[float | None] = mapped_column(sa.Double)
    state: Mapped[SessionState] = mapped_column(
        _enum(SessionState, "state"), default=SessionState.ACTIVE
    )
    # RADIUS accounting (RFC 2866): one Acct-Session-Id per login, carried over to the new
    # row when the user roams; the login's start, and the Access-Accept's Session-Timeout
    # and Idle-Timeout (RFC 2865 5.27, 5.28), which hold for the whole login.
    acct_session_id: Mapped[str | None] = mapped_column(sa.String, index=True)
    login_at: Mapped[float | None] = mapped_column(sa.Double)
    session_timeout: Mapped[int | None] = mapped_column(sa.Integer)
    idle_timeout: Mapped[int | None] = mapped_column(sa.Integer)
    # Why it ended, as an Acct-Terminate-Cause name (RFC 2866 5.10), e.g. "Idle-Timeout".
    terminate_cause: Mapped[str | None] = mapped_column(sa.String)
    # The NFs a CoA-Request (RFC 5176) set for this login only (None: the user's stored
    # required_nfs apply); carried to the new row on a roam, gone with the login.
    nfs_override: Mapped[list[str] | None] = mapped_column(JSON)


class AcctOpen(Base):
    """An accounting session the orchestrator has open (RFC 2866), kept so that a restart
    goes on with its totals: whether the Start was answered, the last Interim-Update (unix
    s), the switch counters read per node (``meter``: {"last": {node: [in_octets, in_packets,
    out_octets, out_packets]}, "base": {node: [...]}}) and the totals already reported
    (``reported``, the same four). Removed once its Stop is answered."""

    __tablename__ = "acct_open"

    acct_session_id: Mapped[str] = mapped_column(sa.String, primary_key=True)
    user_name: Mapped[str] = mapped_column(sa.String)
    nas_id: Mapped[str] = mapped_column(sa.String)
    mac: Mapped[str | None] = mapped_column(sa.String)
    ip: Mapped[str | None] = mapped_column(sa.String)
    login_at: Mapped[float] = mapped_column(sa.Double)
    started: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    last_interim: Mapped[float] = mapped_column(sa.Double)
    meter: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reported: Mapped[list[int]] = mapped_column(JSON, default=list)
    updated_at: Mapped[float] = mapped_column(sa.Double, default=now)


class TroubleshootOcc(Base):
    """A troubleshooting question asked through the orchestrator (orchestrator/
    troubleshoot.py): its state (PROCESSING, COMPLETED, FAILED), when it started and ended
    (unix s), and ``doc``, the occurrence as the API shows it (target, probes, operation
    occurrences, steps, report, error). Written when it starts and when it ends; one left
    PROCESSING by a restart is failed at the next start (recovery)."""

    __tablename__ = "troubleshoot_occs"

    id: Mapped[str] = mapped_column(sa.String, primary_key=True)
    state: Mapped[str] = mapped_column(sa.String, index=True)
    start_time: Mapped[float] = mapped_column(sa.Double, index=True)
    end_time: Mapped[float | None] = mapped_column(sa.Double)
    doc: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class VnfPackage(Base):
    """The NF catalogue: an NF bundle (.tgz), addressed by its sha256."""

    __tablename__ = "bundles"
    _private = frozenset({"data"})

    sha256: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String, index=True)
    version: Mapped[str] = mapped_column(sa.String)
    descriptor: Mapped[dict[str, Any]] = mapped_column(JSON)
    size: Mapped[int] = mapped_column(sa.Integer)
    data: Mapped[bytes] = mapped_column(sa.LargeBinary, deferred=True)
    uploaded_at: Mapped[float] = mapped_column(sa.Double, default=now)


class VnfInstance(Base):
    """Table II: an NF instance of one owner on one node."""

    __tablename__ = "vnf_instances"
    __table_args__ = (sa.UniqueConstraint("node_name", "owner", "nf_name"),)

    id: Mapped[str] = mapped_column(sa.String, primary_key=True)
    nf_name: Mapped[str] = mapped_column(sa.String)
    bundle_sha256: Mapped[str] = mapped_column(sa.ForeignKey("bundles.sha256"), index=True)
    flavour: Mapped[str] = mapped_column(sa.String)
    owner: Mapped[str] = mapped_column(sa.ForeignKey("users.name"), index=True)
    node_name: Mapped[str] = mapped_column(sa.ForeignKey("nodes.name"))
    desired_state: Mapped[Presence] = mapped_column(
        _enum(Presence, "desired_state"), default=Presence.PRESENT
    )
    actual_state: Mapped[ActualState] = mapped_column(
        _enum(ActualState, "actual_state"), default=ActualState.PENDING
    )
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    active_users: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Placed by the operator (a migration through the API): the policy keeps it where it is
    # while it can serve its user from there (migration 0010).
    pinned: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    created_at: Mapped[float] = mapped_column(sa.Double, default=now)
    updated_at: Mapped[float] = mapped_column(sa.Double, default=now)


class SteeringRule(Base):
    """Table III: the chain a user's traffic crosses at a node, and whether it is installed."""

    __tablename__ = "steering_rules"
    __table_args__ = (sa.UniqueConstraint("user_name", "node_name"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    user_name: Mapped[str] = mapped_column(sa.ForeignKey("users.name", ondelete="CASCADE"))
    node_name: Mapped[str] = mapped_column(
        sa.ForeignKey("nodes.name", ondelete="CASCADE"), index=True
    )
    mac: Mapped[str | None] = mapped_column(sa.String)
    ip: Mapped[str | None] = mapped_column(sa.String)
    chain: Mapped[list[str]] = mapped_column(JSON, default=list)
    desired: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    installed: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    updated_at: Mapped[float] = mapped_column(sa.Double, default=now)


class TsRule(Base):
    """A traffic steering rule on a node's LSI (NNF paper, Table I: createTSRule), as an
    operator (or a benchmark) asked for it: published to the SDN controller in the node's
    switch state (controller.model.TSRule), next to what the controller derives itself."""

    __tablename__ = "ts_rules"
    __table_args__ = (sa.UniqueConstraint("node_name", "rule_id"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    node_name: Mapped[str] = mapped_column(
        sa.ForeignKey("nodes.name", ondelete="CASCADE"), index=True
    )
    rule_id: Mapped[str] = mapped_column(sa.String)
    priority: Mapped[int] = mapped_column(sa.Integer)
    match: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    output: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[float] = mapped_column(sa.Double, default=now)


class Notification(Base):
    """A notification an NF sent (relayed by its agent). No FK: it outlives the instance."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    nf_instance_id: Mapped[str | None] = mapped_column(sa.String, index=True)
    node: Mapped[str | None] = mapped_column(sa.String)
    owner: Mapped[str | None] = mapped_column(sa.String)
    type: Mapped[str] = mapped_column(sa.String)
    severity: Mapped[str] = mapped_column(sa.String)
    source: Mapped[str] = mapped_column(sa.String)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ts: Mapped[float] = mapped_column(sa.Double, index=True)
    acknowledged: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    created_at: Mapped[float] = mapped_column(sa.Double, default=now)


class NotificationMute(Base):
    """An NF instance whose notifications the operator muted."""

    __tablename__ = "notification_mutes"

    nf_instance_id: Mapped[str] = mapped_column(sa.String, primary_key=True)
    muted_at: Mapped[float] = mapped_column(sa.Double, default=now)


class VnfLcmOpOcc(Base):
    """SOL003 VnfLcmOpOcc: one lifecycle operation and its state. No FK: it outlives the NF."""

    __tablename__ = "vnf_lcm_op_occs"
    # pages and the latest occurrences: an index range (migration 0009)
    __table_args__ = (sa.Index("ix_op_occs_start", "start_time", "id"),)

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    operation: Mapped[LcmOperation] = mapped_column(_enum(LcmOperation, "operation"))
    operation_state: Mapped[OpState] = mapped_column(
        _enum(OpState, "operation_state"), index=True
    )
    vnf_instance_id: Mapped[str] = mapped_column(sa.String, index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    start_time: Mapped[float] = mapped_column(sa.Double, default=now)
    state_entered_time: Mapped[float] = mapped_column(sa.Double, default=now)
    is_cancel_pending: Mapped[bool] = mapped_column(default=False, server_default=sa.false())


class Subscription(Base):
    """SOL003 LccnSubscription: where to POST lifecycle notifications, and which ones."""

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    callback_uri: Mapped[str] = mapped_column(sa.String)
    filter: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(sa.Double, default=now)
