"""The native personal firewall with real traffic between namespaces."""

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


def rule_packets(tb: Testbed, node: str, iid: str) -> list[int]:
    return [r["packets"] for r in tb.node(node).compute.status(iid).detail["rules"]]


def test_allowed_port_passes_denied_port_drops_counters_show_it(
    tb: Testbed, fw_sha: str, servers: list[Server]
) -> None:
    servers += [Server("fate-h-inet", INET, 5201), Server("fate-h-inet", INET, 2323)]
    cfg = {"default_out": "allow", "rules": [
        {"action": "allow", "proto": "tcp", "dport": 5201},
        {"action": "deny", "proto": "tcp", "dport": 2323},
    ]}
    # without the NF both ports answer
    s = tcp_connect("fate-h-client1", INET, 2323)
    assert s is not None
    s.close()
    iid = deploy_for(tb, "client1", "user1", fw_sha, cfg)
    before = rule_packets(tb, "cpe1", iid)
    ok = tcp_connect("fate-h-client1", INET, 5201)
    assert ok is not None and echo_ok(ok)
    ok.close()
    assert tcp_connect("fate-h-client1", INET, 2323, timeout=0.7) is None
    after = rule_packets(tb, "cpe1", iid)
    assert after[0] > before[0], "the allow rule's counter shows the traffic crossed the NF"
    assert after[1] > before[1], "the deny rule's counter shows the drop"


def test_tenant_isolation_between_users(tb: Testbed, fw_sha: str, servers: list[Server]) -> None:
    servers.append(Server("fate-h-inet", INET, 2323))
    deploy_for(tb, "client1", "user1", fw_sha,
               {"rules": [{"action": "deny", "proto": "tcp", "dport": 2323}]})
    deploy_for(tb, "client2", "user2", fw_sha, {"rules": []})
    assert tcp_connect("fate-h-client1", INET, 2323, timeout=0.7) is None
    other = tcp_connect("fate-h-client2", INET, 2323)
    assert other is not None and echo_ok(other), "user1's rules must not apply to user2"
    other.close()


def test_inbound_new_connections_are_denied_by_default(
    tb: Testbed, fw_sha: str, servers: list[Server]
) -> None:
    servers.append(Server("fate-h-client1", "10.90.1.1", 8080))
    s = tcp_connect("fate-h-inet", "10.90.1.1", 8080)
    assert s is not None  # reachable without a firewall
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


def test_pause_stops_forwarding_and_start_resumes(
    tb: Testbed, fw_sha: str, servers: list[Server]
) -> None:
    servers.append(Server("fate-h-inet", INET, 5201))
    iid = deploy_for(tb, "client1", "user1", fw_sha, {})
    compute = tb.node("cpe1").compute
    compute.pause_nf(iid)
    assert tcp_connect("fate-h-client1", INET, 5201, timeout=0.7) is None
    compute.start_nf(iid)
    s = tcp_connect("fate-h-client1", INET, 5201)
    assert s is not None and echo_ok(s)
    s.close()
