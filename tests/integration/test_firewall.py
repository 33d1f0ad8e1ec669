"""The native personal firewall with real traffic between namespaces (what every flavour
keeps, allow/deny, tenants, pause and moving state, is test_compute_contract.py)."""

from __future__ import annotations

import time

import pytest

from netfate.testbed.context import Testbed

from .conftest import Server, echo_ok, tcp_connect

INET = "10.255.0.1"


def deploy_for(tb: Testbed, host: str, owner: str, sha: str, cfg: dict[str, object]) -> str:
    node_name, mac, access, uplink = tb.access(host)
    node = tb.node(node_name)
    info = node.deploy_nf(owner, "firewall", sha, cfg)
    node.steer(f"user:{owner}", mac, access, uplink, [info])
    return info.instance_id


def test_inbound_new_connections_are_denied_by_default(
    tb: Testbed, fw_sha: str, servers: list[Server]
) -> None:
    servers.append(Server("fate-h-client1", "10.90.1.1", 8080))
    # reachable without a firewall (the first packets after `testbed up` may wait on ARP and
    # the server's start on a busy machine: a few tries)
    s = None
    for _ in range(10):  # a refused connect returns at once: wait for the server between tries
        if (s := tcp_connect("fate-h-inet", "10.90.1.1", 8080)) is not None:
            break
        time.sleep(0.3)
    assert s is not None
    s.close()
    deploy_for(tb, "client1", "user1", fw_sha, {})
    assert tcp_connect("fate-h-inet", "10.90.1.1", 8080, timeout=0.7) is None


@pytest.mark.parametrize("carry_conntrack", [True, False])
def test_established_connection_survives_a_move_only_with_its_conntrack_state(
    tb: Testbed, fw_sha: str, servers: list[Server], carry_conntrack: bool
) -> None:
    """Replace the firewall by a new instance whose rules no longer admit new connections:
    the established connection survives exactly when the conntrack entries come along."""
    servers.append(Server("fate-h-inet", INET, 5201))
    node_name, mac, access, uplink = tb.access("client1")
    node = tb.node(node_name)
    old = node.deploy_nf("user1", "fw-old", fw_sha,
                         {"default_out": "deny",
                          "rules": [{"action": "allow", "proto": "tcp", "dport": 5201}]})
    node.steer("user:user1", mac, access, uplink, [old])
    conn = tcp_connect("fate-h-client1", INET, 5201)
    assert conn is not None and echo_ok(conn, b"before")
    state = node.compute.export_state(old.instance_id)
    assert state["format"] == "netfate-state/1" and state["nf"] == "firewall"
    assert any("dport=5201" in e or "--dport 5201" in e for e in state["conntrack"])
    locked = {"default_out": "deny", "rules": []}
    new = node.deploy_nf("user1", "fw-new", fw_sha, locked)
    if carry_conntrack:
        node.compute.import_state(new.instance_id, {**state, "config": locked})
    node.steer("user:user1", mac, access, uplink, [new])
    node.remove_nf(old.instance_id)
    time.sleep(0.1)
    conn.settimeout(1.0)
    assert echo_ok(conn, b"after-the-move") is carry_conntrack
    conn.close()
    assert tcp_connect("fate-h-client1", INET, 5201, timeout=0.7) is None


def test_update_changes_rules_live(tb: Testbed, fw_sha: str, servers: list[Server]) -> None:
    servers.append(Server("fate-h-inet", INET, 2323))
    iid = deploy_for(tb, "client1", "user1", fw_sha, {})
    s = tcp_connect("fate-h-client1", INET, 2323)
    assert s is not None
    s.close()
    tb.node("cpe1").compute.update_nf(iid, {"rules": [
        {"action": "deny", "proto": "tcp", "dport": 2323}]})
    assert tcp_connect("fate-h-client1", INET, 2323, timeout=0.7) is None
