"""The chaos checker's judgements on records (no root, no traffic): it must see a stranded
NF, an idle user's NF, a chain not applied, steering elsewhere, and a stuck operation."""

from __future__ import annotations

from typing import Any

from netfate.chaos.checker import op_violations, user_violations
from netfate.chaos.workload import CHAINS, User
from netfate.testbed.topology import load_topology

TOPO = load_topology()


def fw(node: str, user: str = "chaos1", nf: str = "firewall",
       present: bool = True) -> dict[str, Any]:
    return {"id": f"{node}-{user}-{nf}", "owner": user, "nf_name": nf, "node_name": node,
            "desired_state": "present" if present else "absent", "actual_state": "running",
            "config": {}}


def steer(node: str, chain: list[str], user: str = "chaos1") -> dict[str, Any]:
    return {"user_name": user, "node_name": node, "chain": chain, "desired": True}


def active() -> User:
    u = User("chaos1", "client1", logged_in=True)
    u._keep.set()  # active, without a keeper thread
    return u


def test_a_served_user_at_their_cpe_passes() -> None:
    assert user_violations(TOPO, active(), [fw("cpe1")],
                           [steer("cpe1", ["cpe1-chaos1-firewall"])], traffic=False) == []


def test_nfs_stranded_at_the_old_cpe_are_seen() -> None:
    v = user_violations(TOPO, active(), [fw("cpe2")],
                        [steer("cpe2", ["cpe2-chaos1-firewall"])], traffic=False)
    assert any("are not" in x for x in v) and any("steered" in x for x in v)


def test_a_chain_edit_not_applied_is_seen() -> None:
    u = active()
    u.chain = CHAINS[1]
    v = user_violations(TOPO, u, [fw("cpe1")], [steer("cpe1", ["cpe1-chaos1-firewall"])],
                        traffic=False)
    assert v and "requires" in v[0]


def test_an_idle_users_nfs_are_seen_and_released_ones_are_not() -> None:
    idle = User("chaos1", "client1")
    assert user_violations(TOPO, idle, [fw("cpe1")], [], traffic=False)
    assert user_violations(TOPO, idle, [fw("cpe1", present=False)], [], traffic=False) == []


def test_a_stuck_operation_is_seen() -> None:
    ops = [{"id": "a", "operation": "MIGRATE", "vnf_instance_id": "x",
            "operation_state": "PROCESSING"},
           {"id": "b", "operation": "INSTANTIATE", "vnf_instance_id": "y",
            "operation_state": "ROLLED_BACK"}]
    assert len(op_violations(ops)) == 1
