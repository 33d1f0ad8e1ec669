import pytest

from netfate.errors import InvalidInput
from netfate.naming import IFNAMSIZ, ifname, nf_port
from netfate.testbed.topology import load_topology, parse_topology, two_cpes_yaml


def test_default_topology_is_the_poc() -> None:
    t = load_topology()
    assert {n.name for n in t.nodes} == {"core", "dc", "cpe1", "cpe2"}
    assert {h.name for h in t.hosts} == {"inet", "client1", "client2"}
    assert t.host_address(t.host("inet")) == t.gateway


def test_all_interface_names_fit_and_carry_prefix() -> None:
    t = load_topology()
    names = [t.host_port(h) for h in t.hosts]
    names += [n.uplink_port for n in t.nodes if n.uplink_port]
    names += [n.lsi for n in t.nodes]
    names += [nf_port("cpe1-someuser-firewall", "lan")]
    assert all(len(n) <= IFNAMSIZ and n.startswith("fate-") for n in names)
    assert len(set(names)) == len(names)
    assert ifname("a" * 20) != ifname("a" * 21)


@pytest.mark.parametrize(("text", "words"), [
    ("name: x\nnodes: []", "nodes"),
    ("name: x\nnodes: [{name: a, role: cpe, uplink: nope}]", "uplink"),
    ("name: x\nnodes: [{name: a, role: cpe}, {name: a, role: pe}]", "repeat"),
    ("name: x\nsubnet: 8.8.0.0/16\ngateway: 8.8.0.1\nnodes: [{name: a, role: pe}]", "private"),
    ("name: x\nnodes: [{name: a, role: pe}]\nhosts: [{name: h, role: client, attach: b, "
     "address: 10.90.0.5}]", "attach"),
    ("name: x\nnodes: [{name: a, role: pe}]\nhosts: [{name: h, role: client, attach: a, "
     "address: 10.1.0.5}]", "not in"),
    ("name: x\nnodes: [{name: a, role: router}]", "role"),
    # new-user probe, 2026-12-03: the internet stands beyond the gateway, sealed
    ("name: x\ninternet_address: 10.90.1.1\nnodes: [{name: a, role: pe}]", "is in subnet"),
    ("name: x\ninternet_address: 127.0.0.1\nnodes: [{name: a, role: pe}]", "RFC 1918"),
    ("name: x\ninternet_address: 0.0.0.0\nnodes: [{name: a, role: pe}]", "RFC 1918"),
    ("name: x\ngateway: 10.90.0.0\nnodes: [{name: a, role: pe}]", "gateway 10.90.0.0 is"),
    ("name: x\nnodes: [{name: a, role: pe}]\nhosts: [{name: i1, role: internet, attach: a},"
     " {name: i2, role: internet, attach: a}]", "one internet host at most"),
    ("[unclosed", "YAML"),
])
def test_bad_topologies_name_the_problem(text: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        parse_topology(text)


def test_three_cpe_file_parses() -> None:
    from importlib import resources

    text = resources.files("netfate.testbed").joinpath("three-cpe.yaml").read_text()
    assert len([n for n in parse_topology(text).nodes if n.role == "cpe"]) == 3


def test_nodes_run_flavours_by_role_unless_the_file_says_otherwise() -> None:
    t = load_topology()
    assert t.node("dc").runs == ("native", "container", "vm")
    assert t.node("cpe1").runs == ("native",)
    t = parse_topology("name: x\nnodes:\n  - {name: cpe1, role: cpe, flavours: [native, "
                       "container]}\n")
    assert t.node("cpe1").runs == ("native", "container")
    for bad, words in (("[Native]", "flavour"), ("[native, native]", "repeat"), ("[]", "flavours")):
        with pytest.raises(InvalidInput, match=words):
            parse_topology(f"name: x\nnodes:\n  - {{name: a, role: cpe, flavours: {bad}}}\n")


def test_two_cpes_yaml_is_a_topology_with_the_dcs_asked_for() -> None:
    t = parse_topology(two_cpes_yaml("two-dcs", ("dc1", "dc2"), cpe1_mem_mb=40))
    assert t.name == "two-dcs"
    assert [(n.name, n.role, n.uplink, n.mem_mb) for n in t.nodes] == [
        ("core", "pe", None, 8), ("dc1", "dc", "core", None), ("dc2", "dc", "core", None),
        ("cpe1", "cpe", "core", 40), ("cpe2", "cpe", "core", 8)]
    assert [(h.name, h.attach) for h in t.hosts] == [
        ("inet", "core"), ("client1", "cpe1"), ("client2", "cpe2")]
    assert [n.name for n in parse_topology(two_cpes_yaml("one-dc", ("dc",))).nodes] == [
        "core", "dc", "cpe1", "cpe2"]
