"""Orchestrator settings: the ``orchestrator`` group of `netfate.settings.NetfateSettings`,
filled from the command line or NETFATE_* environment variables at the entry point. The
defaults below are the only defaults; this module reads no environment."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from netfate.bus.urls import check as check_servers
from netfate.membership import check_id
from netfate.radius.settings import IDLE_TIMEOUT_MAX, RadiusSettings, SettingsConflict

_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")


class Settings(BaseModel):
    """What the orchestrator runs with. Variables: NETFATE_<FIELD> (e.g. NETFATE_PORT)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # misspelt: an error; inf: no

    state_dir: Path = Field(
        default=Path("/var/lib/netfate"),
        description="Database and embedded NATS live here (persistent, not /run)")
    db_url: str | None = Field(
        default=None, description="SQLAlchemy URL; none: SQLite in state_dir")
    nats_url: str | None = Field(
        default=None, description="NATS URL, or a NATS cluster's member URLs separated by "
        "commas; none: an embedded nats-server")
    nats_port: int | None = Field(
        default=None, ge=1, le=65535,
        description="Port of the embedded nats-server (no nats_url); none: a free one")
    # One of several replicas (issue #15, orchestrator/replica.py): they share PostgreSQL and
    # an external NATS; none: the only orchestrator.
    replica_id: str | None = Field(
        default=None, description="Run as this replica of several (1-31 of a-z, 0-9, '-'); "
        "needs a PostgreSQL db_url and a nats_url; none: the only orchestrator")
    host: str = Field(default="127.0.0.1", description="Address for the API")
    port: int = Field(default=8181, ge=1, le=65535, description="Port for the API")
    # The operator token of the API and UI (netfate.api_auth); kept out of repr and logs.
    api_token: str = Field(
        default="", repr=False,
        description="Operator token for /api/v1 and the UI; empty: generated into "
        "state_dir/api-token (mode 0600)")
    command_timeout: float = Field(
        default=15.0, gt=0, description="Seconds an agent has to answer")
    # Graceful overload (orchestrator/admission.py): past this many user events in flight
    # (admitted, plan not yet run to its end) the API refuses new ones with 429 and
    # Retry-After instead of queueing them behind agents' command timeouts.
    max_events_in_flight: int = Field(
        default=256, ge=0, le=1_000_000,
        description="User events in flight before the API answers 429 (0: no limit)")
    admission_target_s: float = Field(
        default=0.5, gt=0, le=60,
        description="Seconds an admitted user event should take at most: fewer events are "
        "admitted in flight than the recent throughput finishes in this time (min 32)")
    reconcile_interval: float = Field(
        default=5.0, gt=0, description="Seconds between reconciliations")
    node_timeout: float = Field(
        default=10.0, gt=0,
        description="Seconds without telemetry before a node counts as offline (and its "
        "NFs are placed again elsewhere: the failover grace period)")
    # A node silent for node_timeout is down: the engine places its NFs again elsewhere
    # (the failover grace period), from their last checkpoint where there is one.
    checkpoint_interval: float = Field(
        default=30.0, ge=0,
        description="Seconds between exports of every running NF's state, restored when "
        "its node fails (0: none)")
    policy: str = Field(
        default="netfate", description="Placement policy (entry point netfate.policies)")
    # Which implementation (flavour) of an NF runs on a node (netfate.resolver): "nnf" native
    # at the edge, container in the DC, VM last; "first" the NF's own order.
    resolver: str = Field(
        default="nnf", description="Flavour resolver rule (entry point netfate.resolvers)")
    # The closed loop (orchestrator/closed_loop.py): NF notifications -> reactions, e.g.
    # "block-flood-sources" (the Glasgow paper's IoT DDoS mitigation). Empty: off.
    reaction_policy: str = Field(
        default="", description="Reaction policy (entry point netfate.reactions); empty: off")
    # Seconds without a packet from or to a user before the controller reports them idle
    # (the NetFATE paper's "no packets for a certain time period"); 0 turns it off. It is
    # the idle_timeout of the user's OpenFlow flow, 16 bits (controller/model.py Client):
    # past that every user was left out of their switch's state.
    user_idle_timeout: int = Field(
        default=60, ge=0, le=IDLE_TIMEOUT_MAX, description="Seconds without packets before a "
        f"user is idle (0: never; at most {IDLE_TIMEOUT_MAX}, OpenFlow's idle_timeout)")
    # Fast re-authentication: a client whose session is younger than this may associate at
    # another node without logging in again (RADIUS by MAC and session); 0 turns it off.
    # Unauthenticated state is bounded (DHCP starvation, Faucet's max_hosts): a switch
    # keeps at most this many not-logged-in stations per access port and per node, the
    # oldest forgotten first (their flows go with them); DHCP from stations the switch does
    # not know yet is metered per access port at dhcp_pps packets a second (0: no meter).
    max_hosts_per_port: int = Field(
        default=32, ge=1, le=100_000,
        description="Unauthenticated stations kept per access port (oldest evicted)")
    max_hosts_per_node: int = Field(
        default=256, ge=1, le=1_000_000,
        description="Unauthenticated stations kept per node (oldest evicted)")
    dhcp_pps: int = Field(
        default=20, ge=0, le=100_000,
        description="DHCP packets a second from unknown stations per access port (0: no "
        "limit; an OpenFlow meter on the switch)")
    reauth_lifetime: float = Field(
        default=3600.0, ge=0,
        description="Seconds a session allows fast re-authentication at another node (0: off)")
    radius: bool = Field(default=False, description="Start FreeRADIUS with the orchestrator")
    callback_networks: tuple[str, ...] = Field(
        default=("127.0.0.0/8", "::1/128"),
        description="Networks subscription callbacks may go to (comma-separated in "
        "NETFATE_CALLBACK_NETWORKS)")
    metrics_networks: tuple[str, ...] = Field(
        default=("127.0.0.0/8", "::1/128"),
        description="Networks whose clients may read /metrics, which needs no operator "
        "login (comma-separated in NETFATE_METRICS_NETWORKS)")
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, gt=0, description="Largest request body (a bundle upload), "
        "bytes")
    max_json_bytes: int = Field(
        default=1024 * 1024, gt=0, description="Largest request body of every other route "
        "(JSON), bytes")
    inspect_timeout: float = Field(
        default=20.0, gt=0, description="Seconds a bundle upload may take to inspect before "
        "it is refused")
    seed_catalogue: bool = Field(
        default=True, description="Load the packaged NF catalogue at start")
    # Troubleshooting probes (orchestrator/troubleshoot_probes.py) are stations of the access
    # subnet: addresses from its top, the gateway as their default route. The defaults are
    # the testbed's default topology (which passes its own). A user's association at a CPE
    # whose access services are in it must give one of its hosts (access_subnet.py).
    probe_subnet: str = Field(
        default="10.90.0.0/16",
        description="The access subnet troubleshooting probes take addresses in (from its "
        "top), e.g. 10.90.0.0/16; an association's ip at a CPE whose access services are "
        "in it must be a host of it; empty: probes get none (their pings are no evidence), "
        "associations are not checked against it")
    probe_gateway: str = Field(
        default="10.90.0.1", validate_default=True,
        description="The probes' default gateway, a host of probe_subnet: the access "
        "subnet's router, which no user's device is")
    radius_settings: RadiusSettings = Field(
        default_factory=RadiusSettings,
        description="FreeRADIUS and the portals' RADIUS (the NETFATE_RADIUS_* group); "
        "reauth_lifetime above overrides its own")

    @field_validator("api_token")
    @classmethod
    def _token(cls, v: str) -> str:
        # A token read from a file with a CR, or pasted with blanks, went into the client's
        # Authorization header as it was: httpx refused the header and its error printed
        # the whole token (new-user probe, 2026-12-03). The blanks around it are dropped;
        # anything else outside printable ASCII is refused, without echoing the value.
        v = v.strip()
        if v and not all("!" <= c <= "~" for c in v):
            raise ValueError("must be printable ASCII without spaces or control characters")
        return v

    @field_validator("host")
    @classmethod
    def _listen_host(cls, v: str) -> str:
        # an address or a host name (RFC 1123): '0.0.0.0 ; x' started the database and the
        # bus before the API's bind failed with a resolver error (re-probe of 2026-12-06)
        with contextlib.suppress(ValueError):
            ipaddress.ip_address(v)
            return v
        if not _HOSTNAME.fullmatch(v):
            raise ValueError(f"{v!r} is neither an IP address nor a host name")
        return v

    @field_validator("state_dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        if not v.is_absolute():  # it would depend on where the orchestrator was started
            raise ValueError(f"{str(v)!r} is not an absolute path")
        return v

    @field_validator("nats_url")
    @classmethod
    def _nats_servers(cls, v: str | None) -> str | None:
        return check_servers(v)

    @field_validator("callback_networks", "metrics_networks", mode="before")
    @classmethod
    def _split(cls, v: object) -> object:
        return tuple(x.strip() for x in v.split(",") if x.strip()) if isinstance(v, str) else v

    @field_validator("callback_networks", "metrics_networks")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for x in v:
            try:
                ipaddress.ip_network(x, strict=False)
            except ValueError as e:
                raise ValueError(f"{x!r} is not a network: {e}") from None
        return v

    # A check of two fields sits on the later one (the field order matters): the earlier is
    # in info.data then, or absent if it failed itself (it has its own error then). The
    # other field is named in a SettingsConflict, so the error names both variables.
    @field_validator("replica_id")
    @classmethod
    def _replica_id(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return None
        check_id(v, "replica_id")
        if "db_url" in info.data and not (info.data["db_url"] or "").startswith("postgresql"):
            raise SettingsConflict("replica_id needs a shared PostgreSQL database: db_url "
                                   "postgresql+psycopg://... (SQLite is one process's)",
                                   "db_url")
        if "nats_url" in info.data and not info.data["nats_url"]:
            raise SettingsConflict("replica_id needs a shared NATS: nats_url (an embedded "
                                   "nats-server is one process's)", "nats_url")
        return v

    @field_validator("radius")
    @classmethod
    def _radius_alone(cls, v: bool, info: ValidationInfo) -> bool:
        if v and info.data.get("replica_id") is not None:
            # Accounting, Session-Timeout and the RFC 5176 server would run in every replica
            # (duplicate Accounting-Requests, one DAE port): not with replicas yet.
            raise SettingsConflict("radius is not supported with replica_id yet: run "
                                   "FreeRADIUS and the orchestrator's AAA with a single "
                                   "orchestrator", "replica_id")
        return v

    @field_validator("probe_subnet")
    @classmethod
    def _probe_subnet(cls, v: str) -> str:
        if v:
            try:
                ipaddress.IPv4Network(v)
            except ValueError as e:
                raise ValueError(f"{v!r} is not an IPv4 network: {e}") from None
        return v

    @field_validator("probe_gateway")
    @classmethod
    def _probe_gateway(cls, v: str, info: ValidationInfo) -> str:
        subnet = info.data.get("probe_subnet")
        if not v and not subnet:
            return v  # no probe addresses: no gateway either
        try:
            gw = ipaddress.IPv4Address(v)
        except ValueError as e:
            raise ValueError(f"{v!r} is not an IPv4 address: {e}") from None
        if subnet:
            net = ipaddress.IPv4Network(subnet)
            if gw not in net or gw in (net.network_address, net.broadcast_address):
                raise SettingsConflict(f"{gw} is not a host of probe_subnet {net}",
                                       "probe_subnet")
        return v

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.state_dir / 'nfvi.db'}"

    @property
    def public_url(self) -> str:
        return f"http://{self.host}:{self.port}"


OrchestratorSettings = Settings
