"""Handles on a running testbed: its nodes as Node objects, its hosts, the bundle store."""

from __future__ import annotations

from dataclasses import dataclass, field

from netfate import paths
from netfate.bundle import BundleStore
from netfate.controller.model import TSRule
from netfate.drivers import registry
from netfate.drivers.native import SCRIPT_TIMEOUT
from netfate.drivers.ovs import OvsNetwork, OvsServer
from netfate.errors import NetfateError, NotFound
from netfate.interfaces import ComputeContext, NFInfo
from netfate.node import NodeDrivers
from netfate.testbed import lifecycle
from netfate.testbed.topology import HostSpec, Topology
from netfate.testbed.ts_rules import ApiTSRules, LocalTSRules, TSRules


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
    # Brought up with its services (orchestrator, SDN controller, agents): the controller
    # owns every flow, so TS rules go through the orchestrator's API.
    controlled: bool = False
    _nodes: dict[str, NodeDrivers] = field(default_factory=dict)
    _ts_rules: TSRules | None = None

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
                   script_timeout, controlled=bool(st.get("services", True)))

    def close(self) -> None:
        if isinstance(self._ts_rules, ApiTSRules):
            self._ts_rules.close()
        self.network.close()

    def __enter__(self) -> Testbed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def node(self, name: str) -> NodeDrivers:
        if name not in self._nodes:
            spec = self.topology.node(name) if name in self.node_names else None
            if spec is None:
                raise NotFound(f"unknown node {name!r}; the testbed has {self.node_names}")
            # Every flavour the agent would host: the same drivers, the same records.
            ctx = ComputeContext(name, paths.run_dir(), self.store, mtu=self.topology.mtu,
                                 script_timeout=self.script_timeout)
            # Under a controller its table-miss guards NF ports; local guard rules would be
            # flows written behind its back.
            self._nodes[name] = NodeDrivers.hosting(name, spec.lsi, self.network,
                                             registry.build_all(ctx),
                                             guard_ports=not self.controlled)
        return self._nodes[name]

    # -- TS rules (Table I) and chains, on either kind of testbed -----------------------------
    @property
    def ts_rules(self) -> TSRules:
        if self._ts_rules is None:
            self._ts_rules = (ApiTSRules(lifecycle.api_url(), self.network) if self.controlled
                              else LocalTSRules(self.network))
        return self._ts_rules

    def steer(self, host: str, chain: list[NFInfo], tag: str | None = None,
              priority: int = 100) -> list[TSRule]:
        """Steer a host's traffic through NFs on its access node (createTSRule); the rules."""
        node_name, mac, access, uplink = self.access(host)
        node = self.node(node_name)
        rules = node.steering_rules(tag or f"user:{host}", mac, access, uplink, chain,
                                    priority)
        self.ts_rules.apply(node_name, node.lsi, rules)
        return rules

    def open_path(self, host: str, tag: str) -> list[TSRule]:
        """The host's plain path to the uplink and back, for measurements. Without services
        the LSIs switch L2 and it is there already (nothing is installed); under the
        controller an unknown client is behind the captive portal, so it is steered straight
        out, below any chain (priority 50), until `unsteer`."""
        if not self.controlled:
            return []
        return self.steer(host, [], tag=tag, priority=50)

    def unsteer(self, node: str, rules: list[TSRule]) -> None:
        self.ts_rules.delete(node, self.node(node).lsi, [r.rule_id for r in rules])

    def remove_nf(self, node: str, instance_id: str) -> None:
        """Delete an NF and the TS rules naming its ports (no rule points at a port gone)."""
        n = self.node(node)
        if self.controlled:
            try:
                ports = {p.host_if for p in n.driver_of(instance_id).info(instance_id).ports}
            except NetfateError:
                ports = set()
            dangling = [r.rule_id for r in self.ts_rules.rules_of(node, n.lsi)
                        if r.match.in_port in ports or ports & set(r.output)]
            self.ts_rules.delete(node, n.lsi, dangling)
        n.remove_nf(instance_id)

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
