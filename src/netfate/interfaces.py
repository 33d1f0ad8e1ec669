"""The node's abstractions (the NNF paper's Tables I and II) as typed interfaces.

The core calls drivers only through these Protocols; OVS and native are the first drivers, and
container and VM flavours will fit the same shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

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


class NetworkDriver(Protocol):
    """Table I: createLSI, deleteLSI, createPort, deletePort, createTSRule, deleteTSRule."""

    def create_lsi(self, lsi: str) -> None: ...
    def delete_lsi(self, lsi: str) -> None: ...
    def create_port(self, lsi: str, port: str, *, peer: str | None = None) -> int: ...
    def delete_port(self, lsi: str, port: str) -> None: ...
    def create_ts_rule(self, lsi: str, rule: TSRule) -> None: ...
    def delete_ts_rule(self, lsi: str, rule_id: str) -> None: ...
    def list_lsis(self) -> list[str]: ...
    def list_ports(self, lsi: str) -> dict[str, int]: ...


class ComputeDriver(Protocol):
    """Table II, plus state export/import so NFs can move between nodes and flavours."""

    flavour: str

    def create_nf(
        self, node: str, owner: str, name: str, bundle_sha256: str, config: dict[str, Any]
    ) -> NFInfo: ...
    def start_nf(self, instance_id: str) -> NFInfo: ...
    def stop_nf(self, instance_id: str) -> NFInfo: ...
    def update_nf(self, instance_id: str, config: dict[str, Any]) -> NFInfo: ...
    def delete_nf(self, instance_id: str) -> None: ...
    def pause_nf(self, instance_id: str) -> NFInfo: ...
    def export_state(self, instance_id: str) -> dict[str, Any]: ...
    def import_state(self, instance_id: str, state: dict[str, Any]) -> None: ...
    def info(self, instance_id: str) -> NFInfo: ...
    def status(self, instance_id: str) -> NFInfo: ...
    def list_nfs(self) -> list[NFInfo]: ...
