"""Handles on a running testbed: its nodes as Node objects, its hosts, the bundle store."""

from __future__ import annotations

from dataclasses import dataclass, field

from netfate import paths
from netfate.bundle import BundleStore
from netfate.drivers import registry
from netfate.drivers.native import SCRIPT_TIMEOUT
from netfate.drivers.ovs import OvsNetwork, OvsServer
from netfate.errors import NetfateError, NotFound
from netfate.interfaces import ComputeContext
from netfate.node import Node
from netfate.testbed import lifecycle
from netfate.testbed.topology import HostSpec, Topology


class TestbedDown(NetfateError):
    pass


@dataclass
class Testbed:
    __test__ = False  # not a pytest class
    topology: Topology
    server: OvsServer
    network: OvsNetwork
    store: BundleStore
    script_timeout: float = SCRIPT_TIMEOUT
    _nodes: dict[str, Node] = field(default_factory=dict)

    @classmethod
    def attach(cls, script_timeout: float = SCRIPT_TIMEOUT) -> Testbed:
        """Handles on the testbed that is up (TestbedDown if none is); its nodes' NF
        lifecycle scripts may run ``script_timeout`` seconds."""
        st = lifecycle.load_state()
        server = OvsServer(paths.ovs_dir())
        if st is None or not server.running():
            raise TestbedDown("the testbed is not up; run 'netfate testbed up'")
        topo = Topology.model_validate(st["topology"])
        return cls(topo, server, OvsNetwork(server), BundleStore(paths.bundles_dir()),
                   script_timeout)

    def close(self) -> None:
        self.network.close()

    def __enter__(self) -> Testbed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def node(self, name: str) -> Node:
        if name not in self._nodes:
            spec = self.topology.node(name) if name in self.node_names else None
            if spec is None:
                raise NotFound(f"unknown node {name!r}; the testbed has {self.node_names}")
            # Every flavour the agent would host: the same drivers, the same records.
            ctx = ComputeContext(name, paths.run_dir(), self.store, mtu=self.topology.mtu,
                                 script_timeout=self.script_timeout)
            self._nodes[name] = Node.hosting(name, spec.bridge, self.network,
                                             registry.build_all(ctx))
        return self._nodes[name]

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.topology.nodes]

    def host(self, name: str) -> HostSpec:
        return self.topology.host(name)

    def internet(self) -> HostSpec:
        for h in self.topology.hosts:
            if h.role == "internet":
                return h
        raise NotFound("the topology has no internet host")

    def access(self, host: str) -> tuple[str, str, str, str]:
        """(node, user MAC, access port, uplink port) for a host on a node's LAN."""
        h = self.topology.host(host)
        spec = self.topology.node(h.attach)
        if spec.uplink_port is None:
            raise NotFound(f"node {spec.name} has no uplink")
        return spec.name, h.mac or h.default_mac(), self.topology.host_port(h), spec.uplink_port
