"""Hostile topology files (found by the breaker pass): refused with an InvalidInput naming
what is wrong, before anything is brought up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netfate import naming
from netfate.errors import InvalidInput
from netfate.testbed.topology import load_topology, parse_topology

NODES = "nodes: [{name: a, role: pe}, {name: b, role: cpe, uplink: a}]\n"


@pytest.mark.parametrize(("text", "match"), [
    # the overlay's endpoints are addresses in the host's own namespace
    ("overlay_subnet: 127.0.0.0/24\n" + NODES, "RFC 1918"),
    ("overlay_subnet: 169.254.0.0/24\n" + NODES, "RFC 1918"),
    ("overlay_subnet: 0.0.0.0/24\n" + NODES, "RFC 1918"),
    ("overlay_subnet: 10.255.0.0/24\n" + NODES, "internet_address 10.255.0.1 is in"),
    # a loop of uplinks is a loop of patch links between the switches
    ("nodes: [{name: a, role: pe, uplink: b}, {name: b, role: cpe, uplink: a}]\n",
     "uplinks loop: a -> b -> a"),
    ("nodes: [{name: a, role: dc, uplink: c}, {name: b, role: pe, uplink: a},"
     " {name: c, role: cpe, uplink: b}]\n", "uplinks loop"),
    # a host named like a child node of its switch, or like a port the testbed makes
    (NODES + "hosts: [{name: b, role: client, attach: a, address: 10.90.0.5}]\n",
     "interface fate-a-b, already node b's uplink peer"),
    (NODES + "hosts: [{name: up, role: client, attach: b, address: 10.90.0.5}]\n",
     "interface fate-b-up"),
    (NODES + "hosts: [{name: ul, role: client, attach: b, address: 10.90.0.5}]\n",
     "interface fate-b-ul"),
    (NODES + "hosts: [{name: uu, role: client, attach: b, address: 10.90.0.5}]\n",
     "interface fate-b-uu"),
    (NODES + "hosts: [{name: h, role: client, attach: b, address: 10.90.0.0}]\n",
     "network, broadcast or gateway"),
    (NODES + "hosts: [{name: h, role: client, attach: b, address: 10.90.255.255}]\n",
     "network, broadcast or gateway"),
    (NODES + "hosts: [{name: h, role: client, attach: b, address: 10.90.0.1}]\n",
     "network, broadcast or gateway"),
])
def test_bad_topologies_are_refused(text: str, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        parse_topology("name: x\n" + text)


def test_packaged_topologies_still_parse() -> None:
    from netfate.scenarios.ddos import topology
    assert topology().nodes
    for name in ("default.yaml", "three-cpe.yaml", "three-tier.yaml"):
        load_topology(Path(__file__).parents[2] / "src/netfate/testbed" / name)


def test_a_file_that_is_not_utf8_a_fifo_or_a_device_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_bytes(b"name: x\xff\n" + NODES.encode())
    with pytest.raises(InvalidInput, match="not UTF-8"):
        load_topology(bad)
    os.mkfifo(tmp_path / "fifo")
    for p in (tmp_path / "fifo", Path("/dev/zero"), tmp_path):
        with pytest.raises(InvalidInput, match=r"not a regular file|is a directory"):
            load_topology(p)


# -- probe of 2026-12-06: names other things' resources carry, and MACs -----------------------

HOST_B = "hosts: [{name: c1, role: client, attach: b, address: 10.90.0.5%s}]\n"


@pytest.mark.parametrize("node", sorted(naming.RESERVED_NODE_NAMES))
def test_a_node_named_like_another_kind_of_namespace_is_refused(node: str) -> None:
    """A node `h` took every host's namespace (fate-h-...) for its own leftovers; `s` the
    access services' and the pools' tags likewise."""
    text = f"nodes: [{{name: a, role: pe}}, {{name: {node}, role: cpe, uplink: a}}]\n"
    with pytest.raises(InvalidInput, match=f"node name '{node}' is reserved"):
        parse_topology("name: x\n" + text)


@pytest.mark.parametrize(("text", "match"), [
    # the CPE's access services port is fate-<cpe>-svc
    (NODES + "hosts: [{name: svc, role: client, attach: b, address: 10.90.0.5}]\n",
     "interface fate-b-svc, already node b's access services port"),
    ("nodes: [{name: a, role: pe}, {name: b, role: cpe, uplink: a},"
     " {name: svc, role: cpe, uplink: b}]\n", "interface fate-b-svc"),
    # a station's MAC: not a group address, not zeros, not another host's
    (NODES + HOST_B % ", mac: 'ff:ff:ff:ff:ff:ff'", "group"),
    (NODES + HOST_B % ", mac: '01:00:5e:00:00:01'", "group"),
    (NODES + HOST_B % ", mac: '00:00:00:00:00:00'", "all zeros"),
    (NODES + "hosts: [{name: c1, role: client, attach: b, address: 10.90.0.5, "
     "mac: '02:00:00:00:00:01'}, {name: c2, role: client, attach: b, address: 10.90.0.6, "
     "mac: '02:00:00:00:00:01'}]\n", "MAC 02:00:00:00:00:01 is host c1's too"),
])
def test_names_and_macs_that_clash_are_refused(text: str, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        parse_topology("name: x\n" + text)


def test_an_explicit_mac_equal_to_another_hosts_default_is_refused() -> None:
    from netfate.testbed.topology import HostSpec

    theirs = HostSpec(name="c1", role="client", attach="b").default_mac()
    text = NODES + ("hosts: [{name: c1, role: client, attach: b, address: 10.90.0.5}, "
                    "{name: c2, role: client, attach: b, address: 10.90.0.6, "
                    f"mac: '{theirs}'}}]\n")
    with pytest.raises(InvalidInput, match="is host c1's too"):
        parse_topology("name: x\n" + text)


@pytest.mark.parametrize("name", ["a[/]b[bold", "a b", "a/b", "a\x00b", "", "-x", "x" * 65])
def test_a_topology_name_is_a_plain_name(name: str) -> None:
    """It is printed (rich markup broke on '[') and recorded."""
    import json

    with pytest.raises(InvalidInput, match="name"):
        parse_topology(f"name: {json.dumps(name)}\n" + NODES)


def test_an_unknown_key_in_a_node_is_the_only_error_named() -> None:
    with pytest.raises(InvalidInput) as err:
        parse_topology("name: x\nnodes: [{name: a, role: pe, bogus: 1}]\n")
    assert "nodes.0.bogus: Extra inputs" in str(err.value)
    assert "at least 1 item" not in str(err.value)


def test_a_missing_topology_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        load_topology(tmp_path / "nope.yaml")
    with pytest.raises(InvalidInput, match="is a directory"):
        load_topology(tmp_path)


@pytest.mark.parametrize(("text", "match"), [
    # a client roams to every CPE: its link there must be no other interface (re-probe of
    # 2026-12-06: `testbed move x cpe2` onto node x's uplink peer cut the host off, and a
    # client `ul` on one CPE removed another CPE's underlay bridge)
    ("nodes: [{name: core, role: pe}, {name: cpe1, role: cpe, uplink: core},"
     " {name: cpe2, role: cpe, uplink: core}, {name: x, role: cpe, uplink: cpe2}]\n"
     "hosts: [{name: x, role: client, attach: cpe1, address: 10.90.1.1}]\n",
     "interface fate-cpe2-x"),
    ("nodes: [{name: core, role: pe}, {name: cpe1, role: cpe, uplink: core, overlay: false},"
     " {name: cpe2, role: cpe, uplink: core}]\n"
     "hosts: [{name: ul, role: client, attach: cpe1, address: 10.90.1.1}]\n",
     "interface fate-cpe2-ul"),
])
def test_a_roaming_clients_links_are_claimed_on_every_cpe(text: str, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        parse_topology("name: x\n" + text)
