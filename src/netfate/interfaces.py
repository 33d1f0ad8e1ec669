"""The node's abstractions (the NNF paper's Tables I and II) as typed interfaces: the whole
contract between the agent (and `netfate.node.Node`) and the drivers.

- `ComputeDriver`: Table II (createNF, startNF, stopNF, updateNF, deleteNF, pauseNF), plus what
  the platform needs around it: state export/import (an NF moves between nodes and flavours),
  the NFs' notification queue, garbage collection after a crash, and info/status/list.
  One driver per flavour, registered under the entry-point group `netfate.compute`
  (netfate.drivers.registry; docs/drivers.md).
- `NetworkDriver`: Table I (createLSI, deleteLSI, createPort, deletePort, createTSRule,
  deleteTSRule), plus what the agent really calls: ports in batches, isolated NF ports, the
  ports' external_ids, TS rules in batches, and making the datapath use new flows.

Every operation is idempotent: re-applying one that already took effect changes nothing.
Errors are netfate.errors: NotFound (unknown NF, LSI, port, bundle), InvalidInput (bad config
or state document), Conflict (a name in use), MissingCapability (the node lacks what the NF
depends on), DriverError (a command, kernel call or OVSDB transaction failed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from netfate.bundle import BundleStore
from netfate.controller.model import TSRule


class NFState(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"


@dataclass(frozen=True)
class NFPort:
    name: str      # the interface name the NF sees (e.g. "lan")
    host_if: str   # the end attached to the LSI, in the node's root namespace


@dataclass
class NFInfo:
    instance_id: str
    node: str
    owner: str
    name: str
    flavour: str
    bundle_sha256: str
    state: NFState
    ports: list[NFPort]
    config: dict[str, Any] = field(default_factory=dict)
    netns: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    # MACs of the NF's own interfaces (e.g. the bridge of an NF with an address): traffic to
    # them must be steered to the NF too.
    own_macs: list[str] = field(default_factory=list)


# -- network (Table I) ------------------------------------------------------------------------
class LsiDriver(Protocol):
    """Table I's createLSI/deleteLSI: a node's logical switch instances (LSI-0 is its switch)."""

    def create_lsi(self, lsi: str, *, controller: str | None = None,
                   datapath_id: str | None = None) -> None:
        """Create the LSI (an OpenFlow 1.3 switch that drops what no rule forwards); a no-op
        if it exists. `controller`: OpenFlow targets (tcp:HOST:PORT, comma-separated) that
        own its flows, replacing any it had (None: left as they are); `datapath_id`: 16 hex
        digits (controller/pipeline.py's ovs_datapath_id of the node). DriverError if the
        switch can't be reached."""
        ...

    def delete_lsi(self, lsi: str) -> None:
        """Delete the LSI and its ports; a no-op if it does not exist."""
        ...

    def list_lsis(self) -> list[str]:
        """The LSIs' names, sorted."""
        ...


class PortDriver(Protocol):
    """Table I's createPort/deletePort, singly and in batches."""

    def create_port(self, lsi: str, port: str, *, peer: str | None = None) -> int:
        """Attach the kernel interface `port` (or, with `peer`, a patch port to the port of that
        name on another LSI) to the LSI; returns its OpenFlow port number. NotFound if the LSI
        does not exist; DriverError if the switch gives the port no number."""
        ...

    def create_ports(
        self, lsi: str, ports: list[tuple[str, str | None]], *, isolated: bool = False,
        external_ids: dict[str, dict[str, str]] | None = None,
    ) -> dict[str, int]:
        """Attach several (port, peer) pairs in one transaction (an NF's ports come up
        together); port name -> OpenFlow port number.

        `isolated` ports take no part in the switch's L2 flooding/learning: only TS rules (or
        the controller's flows) send traffic to them. An NF bridges its ports, so flooding into
        one would loop back out of the other. `external_ids`, by port name, say what sits
        behind a port (`attached-mac`, `netfate-kind`: access, services, ...; see
        netfate.agent.ports). DriverError as create_port.
        """
        ...

    def delete_port(self, lsi: str, port: str) -> None:
        """Detach the port; a no-op if it is not there."""
        ...

    def delete_ports(self, lsi: str, ports: list[str], *, wait: bool = True) -> None:
        """Detach several ports in one transaction; absent ones are skipped. wait=False:
        return once the switch's database has the change, not once the switch has applied
        it (it applies changes in order, so a later waited change covers this one)."""
        ...

    def list_ports(self, lsi: str) -> dict[str, int]:
        """Port name -> OpenFlow port number (-1: no number yet). NotFound if no such LSI."""
        ...

    def port_ids(self, lsi: str) -> dict[str, dict[str, str]]:
        """Port name -> its external_ids (see create_ports): the agent's port report. Cheap
        enough to poll every 50 ms. NotFound if no such LSI."""
        ...

    def watch_ports(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Have `callback` called (from another thread; it must not block) soon after any
        switch's ports or their external_ids change, so a station's association is seen at
        once rather than at the next poll; returns the function that stops it. A driver
        that cannot watch may never call it (readers keep polling).
        DriverError if the switch cannot be reached."""
        ...


class TSRuleDriver(Protocol):
    """Table I's createTSRule/deleteTSRule (traffic steering rules), singly and in batches.

    A rule is the controller's model (netfate.controller.model.TSRule), rendered by its
    pipeline (controller/flows.py); a node without a controller converges its LSI to its
    rules itself (drivers/local_steering.py). Conflict if a controller owns the LSI: then
    the rules go through the orchestrator (/api/v1/nodes/{node}/ts_rules).
    """

    def create_ts_rule(self, lsi: str, rule: TSRule) -> None:
        """Install one rule; re-applying a rule id replaces that rule."""
        ...

    def apply_ts_rules(self, lsi: str, rules: list[TSRule], *, settle: bool = True) -> None:
        """Install rules in one batch, each replacing the rule of the same id. `settle=False`
        when no traffic can have used the old flows (rules on brand-new ports). NotFound if a
        rule names a port the LSI lacks; DriverError if a rule can't be expressed."""
        ...

    def delete_ts_rule(self, lsi: str, rule_id: str) -> None:
        """Remove one rule; a no-op if it is not installed."""
        ...

    def delete_ts_rules(self, lsi: str, rule_ids: list[str]) -> None:
        """Remove several rules in one batch; unknown ids are skipped."""
        ...

    def list_ts_rules(self, lsi: str) -> list[TSRule]:
        """The rules installed through this driver on the LSI."""
        ...

    def settle(self) -> None:
        """Return once the datapath forwards by the switch's current flows (a datapath may
        keep using cached flows for a while after a flow table change)."""
        ...


class TunnelDriver(Protocol):
    """Overlay ports between nodes' LSIs (NetFATE section II: the path joining NFs across
    NFVI nodes): one VXLAN port per peer node, whose VNI the flows set and match (`key=flow`),
    so the far switch learns the user and the hop from the key alone."""

    def create_tunnel(self, lsi: str, port: str, *, remote_ip: str, udp_port: int = 4789,
                      egress_mark: int | None = None,
                      external_ids: dict[str, str] | None = None) -> int:
        """A VXLAN port on the LSI toward `remote_ip` (the peer's tunnel endpoint) on UDP
        `udp_port`; `egress_mark` marks the encapsulated packets (the route to the peer is
        chosen by it where several nodes share one switch daemon). Idempotent: the same call
        again reconfigures the port in place. Returns its OpenFlow port number. InvalidInput
        for an address that is not IPv4 or a port out of 1..65535; NotFound if the LSI does
        not exist; DriverError if the switch refuses it."""
        ...

    def delete_tunnel(self, lsi: str, port: str) -> None:
        """Remove the tunnel port; a no-op if it is not there."""
        ...


class MirrorDriver(Protocol):
    """Port mirroring (SPAN): copies of what crosses some switch ports, sent out of another,
    whatever the flows do with the originals. A troubleshooting probe captures a user's
    traffic at a point without being spliced into their path (Glasgow paper, section V.B)."""

    def create_mirror(self, lsi: str, name: str, ports: list[str], output: str) -> None:
        """Copies of every frame entering or leaving `ports` go out of `output`, which then
        carries nothing else and drops what comes in on it (OVS Mirror.output_port).
        Idempotent by `name`. NotFound if the LSI or one of the ports does not exist;
        InvalidInput if `output` is among `ports` or `ports` is empty."""
        ...

    def delete_mirrors(self, lsi: str, *, output: str | None = None,
                       name: str | None = None) -> list[str]:
        """Remove the mirrors sending to `output`, or named `name`; their names (none: a
        no-op)."""
        ...


class SwitchInspector(Protocol):
    """What the switch itself reports, for people and the troubleshooting report (Glasgow
    paper, section V.B: "collects each node's flow tables")."""

    def dump_flows(self, lsi: str) -> list[dict[str, Any]]:
        """Every flow of the LSI: {cookie, priority, table_id, match, packets, bytes,
        duration_s, idle_timeout}. NotFound if no such LSI."""
        ...

    def port_states(self, lsi: str) -> dict[str, tuple[list[str], list[str]]]:
        """Port name -> (OpenFlow config flags, state flags), e.g. (["PORT_DOWN"],
        ["LINK_DOWN"]); empty lists for a port that is up. DriverError if the switch
        refuses."""
        ...


class NetworkDriver(LsiDriver, PortDriver, TSRuleDriver, TunnelDriver, MirrorDriver,
                    SwitchInspector, Protocol):
    """The network abstraction of one node: NNF paper Table I, plus batches, isolated ports,
    port reports and settling. OvsNetwork (netfate.drivers.ovs) implements it."""

    def close(self) -> None:
        """Release connections to the switch; the driver reconnects on its next call."""
        ...


# -- compute (Table II) -----------------------------------------------------------------------
class NotificationSource(Protocol):
    """Where a compute driver's NFs leave notifications (NetFATE/GNF: NF notifications)."""

    def drain(self) -> list[dict[str, Any]]:
        """Take every queued notification, oldest first. Each is a JSON object with, when
        known: nf_id, nf, owner, type, severity, source, detail (object), ts (Unix s)."""
        ...


@dataclass(frozen=True)
class ComputeContext:
    """What a compute driver is built from on a node (see netfate.drivers.registry)."""

    node: str           # the node's name (a naming token)
    rundir: Path        # the node's run directory: drivers keep their records under it
    store: BundleStore  # the node's NF bundles, by sha256
    mtu: int = 1500     # NF ports match the LSI's links (bytes)
    script_timeout: float = 30.0  # seconds a lifecycle step may run before it is killed
    nf_pool_size: int = 0  # pre-made NF namespaces kept ready (native driver; 0: none)


class ComputeDriver(Protocol):
    """NNF paper Table II for one flavour on one node, plus state export/import (an NF moves
    between nodes and flavours), notifications, garbage collection and info/status/list.

    Instance ids are `naming.nf_instance_id(node, owner, name)`. A driver must only ever touch
    (and garbage-collect) what it made itself: several flavours share a node.
    """

    @property
    def flavour(self) -> str:
        """The flavour this driver runs (the name it is registered under)."""
        ...

    @property
    def queue(self) -> NotificationSource:
        """The notification queue of this driver's NFs; the agent drains and forwards it."""
        ...

    def create_nf(
        self, node: str, owner: str, name: str, bundle_sha256: str, config: dict[str, Any],
        on_ports: Callable[[NFInfo], None] | None = None,
    ) -> NFInfo:
        """createNF: make the NF (its ports exist, not yet on any LSI; state CREATED).

        `config` is validated against the descriptor's schema, defaults filled in. Idempotent
        for the same bundle and config. NotFound (bundle, or `node` is not this driver's);
        InvalidInput (bad names, config, or the NF lacks this flavour); MissingCapability;
        Conflict (the name is in use with another bundle or config). Rolls back on failure.

        ``on_ports``, if given, is called at most once, in this thread, as soon as the NF's
        host ports exist and before its create action runs, so the caller can put them on
        an LSI meanwhile (in a thread of its own: it must not block). Not called for an
        existing NF (idempotent re-apply). If create then fails, the ports are gone.
        """
        ...

    def start_nf(self, instance_id: str) -> NFInfo:
        """startNF (also resumes a paused NF): state RUNNING. NotFound; DriverError."""
        ...

    def stop_nf(self, instance_id: str) -> NFInfo:
        """stopNF: state STOPPED (a CREATED NF stays CREATED). NotFound; DriverError."""
        ...

    def update_nf(self, instance_id: str, config: dict[str, Any]) -> NFInfo:
        """updateNF: a new config, applied live if the NF runs; the old one is kept if
        applying fails. NotFound; InvalidInput; DriverError."""
        ...

    def delete_nf(self, instance_id: str) -> None:
        """deleteNF: stop and remove everything of the NF; a no-op if it does not exist."""
        ...

    def pause_nf(self, instance_id: str) -> NFInfo:
        """pauseNF: freeze a RUNNING NF (state PAUSED). NotFound; Conflict if not running."""
        ...

    def export_state(self, instance_id: str) -> dict[str, Any]:
        """The NF's state as a flavour-independent document (format "netfate-state/1", "nf",
        NF-specific fields). NotFound; InvalidInput if the NF exports no state; DriverError."""
        ...

    def import_state(self, instance_id: str, state: dict[str, Any]) -> None:
        """Load a document from export_state (any node, any flavour) into the NF. NotFound;
        InvalidInput (wrong format or NF, or the NF imports no state); DriverError."""
        ...

    def info(self, instance_id: str) -> NFInfo:
        """The NF's record (state, ports, config) without asking the NF. NotFound."""
        ...

    def status(self, instance_id: str) -> NFInfo:
        """The record with `detail` filled: the NF's own status report and resource use
        (e.g. cgroup_memory_bytes). NotFound; DriverError."""
        ...

    def list_nfs(self) -> list[NFInfo]:
        """Every NF this driver runs on the node, by instance id."""
        ...

    def collect_garbage(self) -> list[str]:
        """Remove what a crash mid-operation left behind (of this driver's own making) with no
        record; returns what was removed, for the log. Run at agent start, before converging."""
        ...
