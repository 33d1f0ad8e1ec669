"""Node hosts a compute driver per flavour, typed on the driver API: fakes stand in for OVS and
the native driver, so no root is needed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from netfate.controller.model import TSRule
from netfate.errors import DriverError, NotFound, UnknownFlavour
from netfate.interfaces import NFInfo, NFPort, NFState
from netfate.node import NodeDrivers
from netfate.queue import NotificationQueue


class FakeNetwork:
    def __init__(self) -> None:
        self.ports: dict[str, int] = {}
        self.rules: dict[str, TSRule] = {}
        self.waited: list[bool] = []  # each delete_ports: whether it waited for the switch
        self.mirrors: dict[str, tuple[list[str], str]] = {}

    def create_lsi(self, lsi: str, *, controller: str | None = None,
                   datapath_id: str | None = None) -> None: ...
    def delete_lsi(self, lsi: str) -> None: ...
    def list_lsis(self) -> list[str]:
        return ["br"]

    def create_port(self, lsi: str, port: str, *, peer: str | None = None) -> int:
        return self.create_ports(lsi, [(port, peer)])[port]

    def create_ports(self, lsi: str, ports: list[tuple[str, str | None]], *,
                     isolated: bool = False,
                     external_ids: dict[str, dict[str, str]] | None = None) -> dict[str, int]:
        for p, _ in ports:
            self.ports.setdefault(p, len(self.ports) + 1)
        return {p: self.ports[p] for p, _ in ports}

    def delete_port(self, lsi: str, port: str) -> None:
        self.ports.pop(port, None)

    def delete_ports(self, lsi: str, ports: list[str], *, wait: bool = True) -> None:
        self.waited.append(wait)
        for p in ports:
            self.ports.pop(p, None)

    def list_ports(self, lsi: str) -> dict[str, int]:
        return dict(self.ports)

    def create_mirror(self, lsi: str, name: str, ports: list[str], output: str) -> None:
        self.mirrors[name] = (ports, output)

    def delete_mirrors(self, lsi: str, *, output: str | None = None,
                       name: str | None = None) -> list[str]:
        gone = [m for m, (_, out) in self.mirrors.items() if m == name or out == output]
        for m in gone:
            del self.mirrors[m]
        return gone

    def port_ids(self, lsi: str) -> dict[str, dict[str, str]]:
        return {p: {} for p in self.ports}

    def watch_ports(self, callback: Callable[[], None]) -> Callable[[], None]:
        return lambda: None

    def create_ts_rule(self, lsi: str, rule: TSRule) -> None:
        self.apply_ts_rules(lsi, [rule])

    def apply_ts_rules(self, lsi: str, rules: list[TSRule], *, settle: bool = True) -> None:
        self.rules.update({r.rule_id: r for r in rules})

    def delete_ts_rule(self, lsi: str, rule_id: str) -> None:
        self.delete_ts_rules(lsi, [rule_id])

    def delete_ts_rules(self, lsi: str, rule_ids: list[str]) -> None:
        for r in rule_ids:
            self.rules.pop(r, None)

    def list_ts_rules(self, lsi: str) -> list[TSRule]:
        return list(self.rules.values())

    def settle(self) -> None: ...
    def close(self) -> None: ...


class FakeCompute:
    def __init__(self, flavour: str, queue: NotificationQueue) -> None:
        self.flavour = flavour
        self.queue = queue
        self.nfs: dict[str, NFInfo] = {}

    def create_nf(self, node: str, owner: str, name: str, bundle_sha256: str,
                  config: dict[str, Any],
                  on_ports: Callable[[NFInfo], None] | None = None) -> NFInfo:
        iid = f"{node}-{owner}-{name}"
        info = NFInfo(iid, node, owner, name, self.flavour, bundle_sha256, NFState.CREATED,
                      [NFPort("lan", f"p-{self.flavour}-{name}")], config)
        if on_ports is not None:
            on_ports(info)
        self.nfs[iid] = info
        return info

    def _set(self, iid: str, state: NFState) -> NFInfo:
        self.info(iid).state = state
        return self.nfs[iid]

    def start_nf(self, instance_id: str) -> NFInfo:
        return self._set(instance_id, NFState.RUNNING)

    def stop_nf(self, instance_id: str) -> NFInfo:
        return self._set(instance_id, NFState.STOPPED)

    def pause_nf(self, instance_id: str) -> NFInfo:
        return self._set(instance_id, NFState.PAUSED)

    def update_nf(self, instance_id: str, config: dict[str, Any]) -> NFInfo:
        self.info(instance_id).config = config
        return self.nfs[instance_id]

    def delete_nf(self, instance_id: str) -> None:
        self.nfs.pop(instance_id, None)

    def export_state(self, instance_id: str) -> dict[str, Any]:
        return {"format": "netfate-state/1"}

    def import_state(self, instance_id: str, state: dict[str, Any]) -> None: ...

    def info(self, instance_id: str) -> NFInfo:
        try:
            return self.nfs[instance_id]
        except KeyError:
            raise NotFound(instance_id) from None

    def status(self, instance_id: str) -> NFInfo:
        return self.info(instance_id)

    def list_nfs(self) -> list[NFInfo]:
        return list(self.nfs.values())

    def collect_garbage(self) -> list[str]:
        return []


@pytest.fixture
def node(tmp_path: Any) -> NodeDrivers:
    native = FakeCompute("native", NotificationQueue(tmp_path / "q1"))
    box = FakeCompute("container", NotificationQueue(tmp_path / "q2"))
    return NodeDrivers("n", "br", FakeNetwork(), native, computes={"container": box})


def test_node_hosts_every_flavour_given(node: NodeDrivers) -> None:
    assert sorted(node.computes) == ["container", "native"]
    assert node.driver() is node.compute is node.computes["native"]


def test_deploy_in_a_flavour_and_find_its_driver(node: NodeDrivers) -> None:
    a = node.deploy_nf("u", "fw", "sha", flavour="container")
    b = node.deploy_nf("u", "ids", "sha")
    assert (a.flavour, a.state, b.flavour) == ("container", NFState.RUNNING, "native")
    assert node.driver_of(a.instance_id) is node.computes["container"]
    assert [i.instance_id for i in node.list_nfs()] == ["n-u-fw", "n-u-ids"]
    assert set(node.network.list_ports("br")) == {"p-container-fw", "p-native-ids"}
    node.remove_nf(a.instance_id)
    assert [i.instance_id for i in node.list_nfs()] == ["n-u-ids"]
    assert set(node.network.list_ports("br")) == {"p-native-ids"}
    node.remove_nf("n-u-nothing")  # unknown: a no-op
    with pytest.raises(NotFound, match="n-u-nothing"):
        node.driver_of("n-u-nothing")


def test_a_flavour_the_node_does_not_host_is_refused_by_name(node: NodeDrivers) -> None:
    with pytest.raises(UnknownFlavour, match=r"no flavour 'vm' \(hosts: container, native\)"):
        node.deploy_nf("u", "fw", "sha", flavour="vm")
    assert node.list_nfs() == []


def test_hosting_makes_the_default_flavour_the_nodes_compute(tmp_path: Any) -> None:
    box = FakeCompute("container", NotificationQueue(tmp_path / "q"))
    native = FakeCompute("native", NotificationQueue(tmp_path / "q"))
    n = NodeDrivers.hosting("n", "br", FakeNetwork(), {"container": box, "native": native})
    assert n.compute is native and set(n.computes) == {"container", "native"}
    only = NodeDrivers.hosting("n", "br", FakeNetwork(), {"container": box})
    assert only.compute is box


@pytest.mark.parametrize("step", ["delete_ports", "delete_ts_rules"])
def test_an_nf_is_deleted_and_its_ports_detached_whatever_step_fails(
        node: NodeDrivers, step: str) -> None:
    """An OVSDB timeout while detaching (seen in a full `make test`) left the NF running, so
    its links outlived it and the next NF of its instance id could not take their names; and
    its ports are detached even when deleting their rules failed."""
    a = node.deploy_nf("u", "fw", "sha", flavour="container")

    def stuck(lsi: str, names: list[str], **_: object) -> None:
        raise RuntimeError("OVSDB transaction failed: exceeded timeout 10 seconds")

    setattr(node.network, step, stuck)
    with pytest.raises(RuntimeError, match="exceeded timeout"):
        node.remove_nf(a.instance_id)
    assert node.list_nfs() == []
    if step == "delete_ts_rules":
        assert node.network.list_ports("br") == {}


class OrderedNetwork(FakeNetwork):
    """Records, each time the NF's ports go, which drop rules on them were still there."""

    def __init__(self) -> None:
        super().__init__()
        self.guards_at_port_delete: list[str] = []

    def delete_ports(self, lsi: str, ports: list[str], *, wait: bool = True) -> None:
        self.guards_at_port_delete = sorted(r for r in self.rules if r.startswith("nfport:"))
        super().delete_ports(lsi, ports, wait=wait)


def test_an_nfs_drop_rules_outlive_its_ports(tmp_path: Any) -> None:
    """While an NF is removed, nothing from its ports may reach the switch's L2 learning: its
    drop rules go after its ports (NORMAL would flood a frame from one of its ports into the
    other, which the NF bridges: the broadcast storm of CI, 2026-12-02)."""
    net = OrderedNetwork()
    n = NodeDrivers("n", "br", net, FakeCompute("native", NotificationQueue(tmp_path / "q")))
    info = n.deploy_nf("alice", "fw", "a" * 64, {})
    port = info.ports[0].host_if
    n.steer("user:alice", "02:00:00:00:00:01", "acc", "up", [info])
    assert f"nfport:{port}" in net.rules
    n.remove_nf(info.instance_id)
    assert net.guards_at_port_delete == [f"nfport:{port}"]  # still there as the ports went
    assert not [r for r in net.rules if port in str(net.rules[r].model_dump())]  # then gone


def test_a_controllers_node_does_not_wait_for_the_switch_to_let_go_of_an_nfs_ports(
        tmp_path: Any) -> None:
    """With guard rules (no controller) the ports' removal is waited on, since the rules go
    after it; on a controller's LSI nothing waits on it, so the NF's release does not."""
    for guarded in (True, False):
        net = FakeNetwork()
        n = NodeDrivers("n", "br", net, FakeCompute("native", NotificationQueue(tmp_path / "q")),
                        guard_ports=guarded)
        info = n.deploy_nf("alice", "fw", "a" * 64, {})
        n.remove_nf(info.instance_id)
        assert net.waited == [guarded] and not net.ports


class SlowCompute(FakeCompute):
    """create_nf calls on_ports, then runs its create action (`action`) or fails in it."""

    def __init__(self, queue: NotificationQueue, fail: str = "", hook: bool = True) -> None:
        super().__init__("native", queue)
        self.fail = fail
        self.hook = hook
        self.deleted: list[str] = []
        self.ports_on_lsi_during_create: dict[str, int] = {}
        self.net: FakeNetwork | None = None

    def create_nf(self, node: str, owner: str, name: str, bundle_sha256: str,
                  config: dict[str, Any],
                  on_ports: Callable[[NFInfo], None] | None = None) -> NFInfo:
        info = super().create_nf(node, owner, name, bundle_sha256, config,
                                 on_ports if self.hook else None)
        import time

        deadline = time.monotonic() + 5  # the create action: the LSI takes the ports meanwhile
        while self.net is not None and self.hook and not self.net.ports:
            assert time.monotonic() < deadline
            time.sleep(0.001)
        self.ports_on_lsi_during_create = dict(self.net.ports if self.net else {})
        if self.fail == "create":
            del self.nfs[info.instance_id]  # the driver rolls itself back
            raise DriverError("create action failed")
        return info

    def start_nf(self, instance_id: str) -> NFInfo:
        if self.fail == "start":
            raise DriverError("start action failed")
        return super().start_nf(instance_id)

    def delete_nf(self, instance_id: str) -> None:
        self.deleted.append(instance_id)
        self.nfs.pop(instance_id, None)


def test_deploy_puts_the_ports_on_the_lsi_while_the_nf_is_being_created(tmp_path: Any) -> None:
    """The OVSDB transaction and the guard rules are off a start's critical path: the ports
    are on the LSI, guarded, before create_nf returns (issue #10)."""
    net = FakeNetwork()
    box = SlowCompute(NotificationQueue(tmp_path / "q"))
    box.net = net
    n = NodeDrivers("n", "br", net, box)
    info = n.deploy_nf("alice", "fw", "a" * 64, {})
    port = info.ports[0].host_if
    assert port in box.ports_on_lsi_during_create
    assert f"nfport:{port}" in net.rules and info.state == NFState.RUNNING


@pytest.mark.parametrize("fail", ["create", "start"])
def test_a_failed_deploy_leaves_no_port_and_no_guard_rule(tmp_path: Any, fail: str) -> None:
    """Whether create fails after its ports went on the LSI, or start fails: no port, no
    guard rule and no NF is left (nothing half-created)."""
    net = FakeNetwork()
    box = SlowCompute(NotificationQueue(tmp_path / "q"), fail=fail)
    box.net = net
    n = NodeDrivers("n", "br", net, box)
    with pytest.raises(DriverError, match=f"{fail} action failed"):
        n.deploy_nf("alice", "fw", "a" * 64, {})
    assert net.ports == {} and net.rules == {} and box.nfs == {}
    assert box.deleted == (["n-alice-fw"] if fail == "start" else [])


def test_deploy_attaches_after_create_when_the_driver_does_not_call_on_ports(
        tmp_path: Any) -> None:
    net = FakeNetwork()
    box = SlowCompute(NotificationQueue(tmp_path / "q"), hook=False)
    box.net = net
    n = NodeDrivers("n", "br", net, box)
    info = n.deploy_nf("alice", "fw", "a" * 64, {})
    assert box.ports_on_lsi_during_create == {}
    assert info.ports[0].host_if in net.ports
