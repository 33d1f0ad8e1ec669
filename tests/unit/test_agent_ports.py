"""What the agent reports about its switch's ports, from their external_ids and the leases."""

from __future__ import annotations

from pathlib import Path

from netfate import naming
from netfate.agent.ports import read_leases, switch_ports
from netfate.bus.messages import ServicesPort

NF_LAN, NF_WAN = naming.nf_port("cpe1-user1-firewall", "lan"), \
    naming.nf_port("cpe1-user1-firewall", "wan")
SERVICES = {"netfate-kind": "services", "attached-mac": "02:5E:00:00:00:01",
            "netfate-ip": "10.90.0.2"}
LEASES = {"02:aa:00:00:00:01": "10.90.1.1"}


def test_read_leases_keeps_mac_and_ip_of_wellformed_lines(tmp_path: Path) -> None:
    f = tmp_path / "leases"
    f.write_text(
        "1700000000 02:AA:00:00:00:01 10.90.1.1 laptop 01:02:aa:00:00:00:01\n"
        "1700000001 02:aa:00:00:00:02 10.90.1.2 * *\n"
        "garbage\n"
        "1700000002 not-a-mac 10.90.1.3 x *\n"
        "\n"
        "1700000003 02:aa:00:00:00:04\n"
    )
    assert read_leases(f) == {"02:aa:00:00:00:01": "10.90.1.1",
                              "02:aa:00:00:00:02": "10.90.1.2"}


def test_read_leases_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert read_leases(tmp_path / "nope") == {}


def test_cpe_ports_are_classified() -> None:
    ports = {
        "fate-cpe1-up": {"netfate-peer-node": "core"},
        "fate-cpe1-a1": {"netfate-kind": "access", "attached-mac": "02:AA:00:00:00:01"},
        "fate-cpe1-a2": {},
        "fate-cpe1-svc": SERVICES,
        NF_LAN: {},
        NF_WAN: {},
    }
    sp = switch_ports("cpe", "fate-cpe1-up", ports, LEASES)
    assert sp.uplink == "fate-cpe1-up"
    assert sorted(sp.access) == ["fate-cpe1-a1", "fate-cpe1-a2"]
    assert sp.infra == []
    assert sp.stations == {"02:aa:00:00:00:01": "fate-cpe1-a1"}
    assert sp.services == ServicesPort(port="fate-cpe1-svc", mac="02:5e:00:00:00:01",
                                       ip="10.90.0.2")
    assert sp.links == {"fate-cpe1-up": "core"}
    assert sp.leases == LEASES
    assert NF_LAN not in sp.access + sp.infra and NF_WAN not in sp.access + sp.infra


def test_services_port_without_its_address_is_not_reported() -> None:
    ports = {"svc": {"netfate-kind": "services", "attached-mac": "02:5e:00:00:00:01"}}
    sp = switch_ports("cpe", "up", ports, {})
    assert sp.services is None and "svc" not in sp.access


def test_pe_ports_are_infrastructure_with_links_and_no_leases() -> None:
    ports = {
        "fate-pe1-up": {},
        "fate-pe1-c1": {"netfate-peer-node": "cpe1", "attached-mac": "02:aa:00:00:00:01"},
        "fate-pe1-c2": {"netfate-kind": "access", "netfate-peer-node": "cpe2"},
        "fate-pe1-inet": {"netfate-kind": "infra"},
        NF_LAN: {},
    }
    sp = switch_ports("pe", "fate-pe1-up", ports, LEASES)
    assert sp.uplink == "fate-pe1-up"  # a node named pe1: not taken for an NF port
    assert sorted(sp.infra) == ["fate-pe1-c1", "fate-pe1-c2", "fate-pe1-inet"]
    assert sp.access == [] and sp.stations == {}
    assert sp.links == {"fate-pe1-c1": "cpe1", "fate-pe1-c2": "cpe2"}
    assert sp.leases == {}


def test_dc_ports_are_infrastructure() -> None:
    sp = switch_ports("dc", "fate-dc1-up", {"fate-dc1-up": {}, "x": {}}, LEASES)
    assert sp.uplink == "fate-dc1-up" and sp.infra == ["x"] and sp.leases == {}


def test_nf_like_port_with_a_kind_is_classified_by_its_kind() -> None:
    sp = switch_ports("cpe", "up", {NF_LAN: {"netfate-kind": "access"}}, {})
    assert sp.access == [NF_LAN]


def test_missing_uplink_is_reported_as_none() -> None:
    sp = switch_ports("cpe", "fate-cpe1-up", {"a1": {}}, {})
    assert sp.uplink is None and sp.access == ["a1"]
