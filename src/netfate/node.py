"""One NFVI node: its LSI-0 (network driver) and its NFs (compute driver), composed.

deploy_nf is create_nf + ports on the LSI + start_nf, and undoes all of it if any step fails.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from netfate.controller.model import Match, TSRule
from netfate.controller.ts_rules import chain_rules
from netfate.drivers.ovs import OvsNetwork
from netfate.interfaces import ComputeDriver, NFInfo


@dataclass
class Node:
    name: str
    lsi: str
    network: OvsNetwork
    compute: ComputeDriver
    # Without an SDN controller the node guards NF ports with drop rules of its own; with
    # one, the controller owns every flow (its table-miss drops) and would purge them.
    guard_ports: bool = True

    def deploy_nf(
        self, owner: str, nf: str, bundle_sha256: str, config: dict[str, Any] | None = None
    ) -> NFInfo:
        info = self.compute.create_nf(self.name, owner, nf, bundle_sha256, config or {})
        try:
            self.attach_ports(info)
            return self.compute.start_nf(info.instance_id)
        except BaseException:
            with contextlib.suppress(Exception):
                self.network.delete_ports(self.lsi, [p.host_if for p in info.ports])
            with contextlib.suppress(Exception):
                self.compute.delete_nf(info.instance_id)
            raise

    def attach_ports(self, info: NFInfo) -> None:
        """Put the NF's ports on the LSI, closed to everything but steering rules.

        An NF bridges its ports, so a frame the switch's L2 learning (NORMAL) sent into one
        would come back out of the other and loop. Its ports sit apart from L2 flooding, and
        what comes out of them goes only where a steering rule sends it: otherwise dropped.
        """
        ports = [p.host_if for p in info.ports]
        self.network.create_ports(self.lsi, [(p, None) for p in ports], isolated=True)
        if not self.guard_ports:
            return
        self.network.apply_ts_rules(self.lsi, [
            TSRule(rule_id=f"nfport:{p}", priority=2, match=Match(in_port=p)) for p in ports
        ], settle=False)  # new ports: no cached flow can involve them

    def remove_nf(self, instance_id: str) -> None:
        try:
            info = self.compute.info(instance_id)
        except Exception:
            info = None
        if info is not None:
            ports = {p.host_if for p in info.ports}
            # No rule may keep pointing at ports that are about to disappear.
            dangling = [
                r.rule_id for r in self.network.list_ts_rules(self.lsi)
                if r.match.in_port in ports or ports & set(r.output)
            ]
            self.network.delete_ts_rules(self.lsi, dangling)
            self.network.delete_ports(self.lsi, sorted(ports))
        self.compute.delete_nf(instance_id)

    def steering_rules(
        self, tag: str, user_mac: str, access_port: str, uplink_port: str, chain: list[NFInfo],
        priority: int = 100,
    ) -> list[TSRule]:
        hops = [(nf.ports[0].host_if, nf.ports[-1].host_if) for nf in chain]
        own = [(mac, nf.ports[-1].host_if) for nf in chain for mac in nf.own_macs]
        return chain_rules(tag, user_mac, access_port, uplink_port, hops, priority, own=own)

    def steer(
        self, tag: str, user_mac: str, access_port: str, uplink_port: str, chain: list[NFInfo]
    ) -> list[TSRule]:
        rules = self.steering_rules(tag, user_mac, access_port, uplink_port, chain)
        self.network.apply_ts_rules(self.lsi, rules)
        return rules

    def unsteer(self, rules: list[TSRule]) -> None:
        self.network.delete_ts_rules(self.lsi, [r.rule_id for r in rules])
