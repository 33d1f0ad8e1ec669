"""One NFVI node: its LSI-0 (a network driver) and its NFs (a compute driver per flavour it
hosts), composed. Typed on the driver API (netfate.interfaces) only.

deploy_nf is create_nf + ports on the LSI + start_nf, and undoes all of it if any step fails.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from netfate.controller.model import Match, TSRule
from netfate.controller.ts_rules import chain_rules
from netfate.errors import NotFound, UnknownFlavour
from netfate.flavours import DEFAULT_FLAVOUR
from netfate.interfaces import ComputeDriver, NetworkDriver, NFInfo


@dataclass
class NodeDrivers:
    name: str
    lsi: str
    network: NetworkDriver
    # The default flavour's driver: what deploy_nf uses when no flavour is asked for.
    compute: ComputeDriver
    # Without an SDN controller the node guards NF ports with drop rules of its own; with
    # one, the controller owns every flow (its table-miss drops) and would purge them.
    guard_ports: bool = True
    # Every flavour the node hosts -> its driver (`compute` is added under its own flavour).
    computes: dict[str, ComputeDriver] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.computes = {self.compute.flavour: self.compute, **self.computes}

    @classmethod
    def hosting(cls, name: str, lsi: str, network: NetworkDriver,
                drivers: dict[str, ComputeDriver], *, guard_ports: bool = True) -> NodeDrivers:
        """A node hosting every driver of `drivers` (flavour -> driver, non-empty); the
        default flavour's driver is its `compute`, else the first by flavour name."""
        default = drivers.get(DEFAULT_FLAVOUR) or drivers[min(drivers)]
        return cls(name, lsi, network, default, guard_ports=guard_ports, computes=drivers)

    # -- compute drivers by flavour ------------------------------------------------------
    def driver(self, flavour: str | None = None) -> ComputeDriver:
        """The driver of `flavour` (None: the default one). UnknownFlavour if the node does
        not host it, naming the flavours it does."""
        if flavour is None:
            return self.compute
        try:
            return self.computes[flavour]
        except KeyError:
            raise UnknownFlavour(f"node {self.name} hosts no flavour {flavour!r} "
                                 f"(hosts: {', '.join(sorted(self.computes))})") from None

    def driver_of(self, instance_id: str) -> ComputeDriver:
        """The driver that runs the NF. NotFound if none of them does."""
        for driver in self.computes.values():
            with contextlib.suppress(NotFound):
                driver.info(instance_id)
                return driver
        raise NotFound(f"no NF {instance_id!r} on node {self.name}")

    def list_nfs(self) -> list[NFInfo]:
        """Every NF on the node, of every flavour, by instance id."""
        nfs = [i for d in self.computes.values() for i in d.list_nfs()]
        return sorted(nfs, key=lambda i: i.instance_id)

    # -- NFs on the LSI ------------------------------------------------------------------
    def deploy_nf(
        self, owner: str, nf: str, bundle_sha256: str, config: dict[str, Any] | None = None,
        flavour: str | None = None,
    ) -> NFInfo:
        """Create, attach and start an NF in `flavour` (None: the default). UnknownFlavour
        if the node does not host that flavour; the driver's errors otherwise; nothing is
        left of the NF (ports, guard rules, the NF) when it raises.

        The ports go on the LSI while the driver runs the NF's create action, from the
        moment they exist (create_nf's ``on_ports``): putting them there is an OVSDB
        transaction that waits for ovs-vswitchd (6-15 ms here) and a batch of guard rules,
        which a start no longer waits for on top of create (issue #10, #14)."""
        compute = self.driver(flavour)
        attaching: list[tuple[NFInfo, Future[None]]] = []

        def on_ports(made: NFInfo) -> None:
            attaching.append((made, _attacher().submit(self.attach_ports, made)))

        try:
            info = compute.create_nf(self.name, owner, nf, bundle_sha256, config or {},
                                     on_ports=on_ports)
        except BaseException:
            for made, done in attaching:  # the driver removed the NF: its ports go too
                with contextlib.suppress(Exception):
                    done.result()
                self._detach(made)
            raise
        try:
            if attaching:
                attaching[0][1].result()
            else:  # the driver did not call on_ports (an existing NF, or it never does)
                self.attach_ports(info)
            return compute.start_nf(info.instance_id)
        except BaseException:
            for _, done in attaching:
                with contextlib.suppress(Exception):
                    done.result()
            self._detach(info)
            with contextlib.suppress(Exception):
                compute.delete_nf(info.instance_id)
            raise

    def _detach(self, info: NFInfo) -> None:
        """Best effort: the NF's ports off the LSI, then their guard rules (a deploy that
        failed; remove_nf is the whole story for an NF that was deployed)."""
        ports = [p.host_if for p in info.ports]
        with contextlib.suppress(Exception):
            self.network.delete_ports(self.lsi, ports)
        if self.guard_ports:
            with contextlib.suppress(Exception):
                self.network.delete_ts_rules(self.lsi, [f"nfport:{p}" for p in ports])

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
        """Detach and delete the NF, whichever flavour runs it; a no-op if it is unknown.
        DriverError if detaching its ports failed (raised after the NF is deleted)."""
        try:
            compute = self.driver_of(instance_id)
            info = compute.info(instance_id)
        except Exception:
            compute, info = self.compute, None
        detach_error: Exception | None = None
        if info is not None:
            ports = {p.host_if for p in info.ports}
            # Each step is tried whatever the one before did, and the NF is deleted even if
            # detaching failed: left running, its links would outlive it and a later NF of
            # the same instance id (another flavour) could not take their names.
            # The drop rules on the NF's ports go last, after the ports: without them, a
            # frame from the still-running NF would reach the switch's L2 learning (NORMAL).
            guards = {f"nfport:{p}" for p in ports}
            dangling: list[str] = []
            try:
                # No rule may keep pointing at ports that are about to disappear.
                dangling = [
                    r.rule_id for r in self.network.list_ts_rules(self.lsi)
                    if r.match.in_port in ports or ports & set(r.output)
                ]
                self.network.delete_ts_rules(
                    self.lsi, [r for r in dangling if r not in guards])
            except Exception as exc:  # re-raised once the NF itself is gone
                detach_error = exc
            try:
                for p in sorted(ports):  # a probe's copies of someone's traffic stop with it
                    self.network.delete_mirrors(self.lsi, output=p)
                # Guard rules to remove after the ports (a node without a controller): the
                # switch must have let go of the ports first. Without (a controller's LSI),
                # nothing here depends on it: the switch applies the removal behind the reply
                # (the old NF of a roam is then reported gone ~70 ms sooner).
                self.network.delete_ports(self.lsi, sorted(ports), wait=self.guard_ports)
                self.network.delete_ts_rules(self.lsi, [r for r in dangling if r in guards])
            except Exception as exc:
                detach_error = detach_error or exc
        compute.delete_nf(instance_id)
        if detach_error is not None:
            raise detach_error

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


_ATTACHER: ThreadPoolExecutor | None = None
_ATTACHER_GUARD = threading.Lock()


def _attacher() -> ThreadPoolExecutor:
    """The threads that put NF ports on LSIs beside create (one process-wide pool: a node
    has no lifecycle to end its own, and idle threads cost nothing)."""
    global _ATTACHER
    with _ATTACHER_GUARD:
        if _ATTACHER is None:
            _ATTACHER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="nf-attach")
        return _ATTACHER
