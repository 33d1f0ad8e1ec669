"""What travels on the bus, as pydantic models (JSON on the wire)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from netfate.flavours import DEFAULT_FLAVOUR
from netfate.validators import UnicastMac

MAX_EXPORTS = 64  # NFs one export_states command asks for


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Resources(_Msg):
    mem_total_mb: int
    mem_free_mb: int
    cpu_util: float = Field(ge=0, le=1)
    nf_count: int = 0
    # CPUs the node has for NFs (its declared budget, else the host's); None: not reported.
    cpus: float | None = Field(default=None, gt=0, allow_inf_nan=False)  # inf: math.ceil fails


class Register(_Msg):
    """The UN paper's three kinds of information, plus identity."""

    node: str
    role: Literal["cpe", "pe", "dc"]
    capabilities: list[str]              # functional: what NF types it can run
    infrastructure: dict[str, Any]       # flavours, CPU architecture, switch
    resources: Resources                 # available resources
    catalogue: list[str] = []            # NF types whose bundles it can run
    agent_version: str = ""


class InstanceSpec(_Msg):
    instance_id: str
    nf_name: str
    owner: str
    bundle_sha256: str
    config: dict[str, Any] = {}
    # The compute driver the agent runs it with; absent (an orchestrator from before
    # flavours travelled) means native.
    flavour: str = DEFAULT_FLAVOUR


class DesiredState(_Msg):
    generation: int = 0
    instances: list[InstanceSpec] = []  # steering is the SDN controller's (SwitchState)


class NFActual(_Msg):
    instance_id: str
    nf_name: str
    owner: str
    state: str
    bundle_sha256: str


class Telemetry(_Msg):
    node: str
    ts: float
    resources: Resources
    nfs: list[NFActual] = []
    clients: int = 0
    generation: int = 0


class MirrorSpec(_Msg):
    """Which of a node's switch ports a probe gets copies of (agent/mirrors.py): the one a
    station (the user's device, by MAC) is attached to, or the links toward a peer node."""

    station_mac: UnicastMac | None = None
    peer_node: str | None = Field(default=None, min_length=1, max_length=63,
                                  pattern=r"^[a-z0-9][a-z0-9_.-]*$")


class DumpSpec(_Msg):
    """What of a node's switch a troubleshooting report reads (agent/switch_dump.py): the
    flows whose match names one of `mentions` (a user's MAC or address), at most
    `max_flows` of them, and every port's state."""

    mentions: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default=[], max_length=8)
    max_flows: int = Field(default=300, ge=1, le=2000)


class Command(_Msg):
    op: Literal["apply", "export_state", "import_state", "status", "nf_status", "ping",
                # the state documents of several NFs (the checkpoint pass)
                "export_states",
                # live migration of VM NFs (netfate.agent.live_migration)
                "migrate_spec", "migrate_in", "migrate_out", "migrate_finish",
                # a troubleshooting probe's copy of a user's traffic (agent/mirrors.py)
                "mirror", "unmirror",
                # its flow tables and port states, for the report (agent/switch_dump.py)
                "switch_dump",
                # the datapath forwards by the switch's flows now (Switches.settle)
                "settle"]
    desired: DesiredState | None = None
    instance_id: str | None = None
    instance_ids: list[str] = Field(default=[], max_length=MAX_EXPORTS)  # export_states
    mirror: MirrorSpec | None = None
    dump: DumpSpec | None = None
    state: dict[str, Any] | None = None
    bundles: dict[str, str] = {}          # sha256 -> URL to fetch a bundle the node lacks


class Reply(_Msg):
    ok: bool
    error: str | None = None
    # An apply's errors by NF instance id: an operation on one tenant's NF reports its own,
    # never another's (`error` joins them all; an agent of before sends only that).
    errors: dict[str, str] = {}
    # The HTTP status describing each of `errors` (errors.http_status: 422 for bad input the
    # agent refused, 409 for a missing capability, 500 for a failure of the node), and
    # `status` for `error` alone: what the operation records (an agent of before sends none).
    statuses: dict[str, int] = {}
    status: int | None = None
    nfs: list[NFActual] = []
    data: dict[str, Any] = {}


class NodeEvent(_Msg):
    node: str
    ts: float
    kind: Literal["client.associated", "client.disassociated", "switch", "nf.state",
                  "nf.failed"]
    data: dict[str, Any] = {}


class ServicesPort(_Msg):
    port: str
    mac: str
    ip: str


class SwitchPorts(_Msg):
    """What the agent sees on its node's switch, for the orchestrator's SwitchState: each
    port's part (from the port's external_ids, set by whoever attached it), the stations
    associated on access ports (`attached-mac`, as hostapd would report them) and the
    DHCP leases of the node's access services."""

    uplink: str | None = None
    access: list[str] = []
    infra: list[str] = []
    links: dict[str, str] = {}          # port -> the node at its other end
    services: ServicesPort | None = None
    stations: dict[str, str] = {}       # MAC -> access port
    leases: dict[str, str] = {}         # MAC -> IPv4 address (DHCP)
    # The overlay: this node's tunnel endpoint and its tunnel port to each peer node it has
    # a route to (a peer missing here: no route; chains through it are refused).
    endpoint: str | None = None
    tunnels: dict[str, str] = {}        # peer node -> tunnel port


class Notification(_Msg):
    node: str
    nf_id: str | None = None
    nf: str | None = None
    owner: str | None = None
    type: str
    severity: str = "warning"
    source: str | None = None
    detail: dict[str, Any] = {}
    ts: float


# -- SDN controller (netfate.controller) ---------------------------------------------------
# The desired state itself travels as netfate.controller.model.SwitchState on
# subjects.controller_desired(node).


class UserIdleReport(_Msg):
    """A user's idle flow expired: no packets either way for their idle timeout."""

    node: str
    user: str
    mac: str
    ts: float


class UserCounters(_Msg):
    """Each authenticated user's traffic through one switch so far, from the counters of
    their port-security flows (table 0): [in_octets, in_packets, out_octets, out_packets],
    "in" from the user, "out" to them. Cumulative while the flows stay installed."""

    node: str
    ts: float
    users: dict[str, tuple[int, int, int, int]]


class ClientSeen(_Msg):
    """DHCP from a MAC the switch has no flows for yet, on this access port."""

    node: str
    mac: UnicastMac  # a group source MAC is no station's: refused here too
    port: str
    ts: float


class SwitchSynced(_Msg):
    """The switch confirmed (barrier) the flows for this generation of its desired state."""

    node: str
    generation: int
    added: int
    deleted: int
    unchanged: int
    skipped: list[str] = []   # parts of the state left out (a port not on the switch yet)
    errors: list[str] = []    # flow-mods the switch refused
    ts: float


class DatapathSettled(_Msg):
    """The node's datapath forwards by the flows of this generation of its switch's desired
    state or a later one: its agent purged the flow cache after the controller's sync
    (agent/settle.py)."""

    node: str
    generation: int
    ts: float


class ControllerAlive(_Msg):
    """A controller's heartbeat when several share the switches (controller/roles.py)."""

    controller: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")
    ts: float


class ReplicaAlive(_Msg):
    """An orchestrator replica's heartbeat (orchestrator/replica.py); ``leaving``: it is
    stopping cleanly, its partitions move at once."""

    replica: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")
    ts: float
    leader: bool = False
    api: str = Field(default="", max_length=200)  # its API's base URL
    leaving: bool = False


class SwitchRequest(_Msg):
    """A replica asks the leader, which publishes every switch state (the steering
    publisher is a singleton), to publish and apply (orchestrator/remote_switches.py)."""

    op: Literal["publish"] = "publish"
    nodes: list[str] = Field(default=[], max_length=10_000)


class SwitchAnswer(_Msg):
    ok: bool
    error: str = ""
    generations: dict[str, int | None] = {}
    reports: list[SwitchSynced] = []


class ControllerHello(_Msg):
    """The controller (re)connected: whoever owns desired state should publish it all again."""

    ts: float
    nodes: list[str] = []     # switches connected to it now
