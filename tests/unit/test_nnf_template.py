"""The NNF paper's NF template (its Fig. 3), exactly as printed, is a valid descriptor: what it
leaves out is defaulted (version, ports) or derived (flavours from vnf-type); its `uri` is
kept and never fetched; its `iptables` dependency is a capability a node can detect. Bad
input is still refused with an error naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from netfate import safe_yaml
from netfate.bundle import BundleStore, inspect_bundle
from netfate.descriptor import parse_descriptor
from netfate.drivers import capabilities
from netfate.errors import InvalidInput
from netfate.resolver import Implementation

from .test_bundle import make_tgz

FIG3 = (Path(__file__).parent.parent / "fixtures" / "nnf-fig3-firewall.template").read_bytes()


def test_the_template_as_printed_parses_with_defaults() -> None:
    d = parse_descriptor(safe_yaml.load(FIG3, "fig3"), "fig3")
    assert (d.name, d.vnf_type, d.multitenancy) == ("firewall", "native", True)
    assert d.uri == "http://repo/native/firewall.tgz"
    assert d.version == "0"
    assert d.flavours == ("native",)
    assert [(p.name, p.role) for p in d.ports] == [("lan", "lan"), ("wan", "wan")]
    assert d.capabilities == ["iptables"]
    assert d.implementation_list() == (Implementation("native", 32, 100, 0),)


def test_a_bundle_with_the_template_as_its_descriptor_is_accepted(tmp_path: Path) -> None:
    data = make_tgz([("descriptor.yaml", FIG3), ("scripts/start", b"#!/bin/bash\n"),
                     ("scripts/stop", b"#!/bin/bash\n")])
    desc, _ = inspect_bundle(data)
    assert desc.name == "firewall" and desc.capabilities == ["iptables"]
    stored = BundleStore(tmp_path).add(data)
    assert stored.descriptor == desc  # and it reads back the same


def test_iptables_is_a_capability_a_node_detects() -> None:
    assert capabilities.TOOLS["iptables"] == "iptables"


def test_kernel_and_hardware_capabilities_are_named_with_their_kind() -> None:
    d = parse_descriptor({"name": "ipsec", "vnf-type": "native", "dependencies": {"capability": [
        {"name": "strongswan"}, {"name": "xfrm", "type": "kernel"},
        {"name": "aes-ni", "type": "hardware"}]}})
    assert d.capabilities == ["strongswan", "kernel:xfrm", "hardware:aes-ni"]


def test_vnf_type_is_derived_from_the_flavours_and_the_other_way() -> None:
    assert parse_descriptor({"name": "fw", "flavours": ["container", "native"]}).vnf_type \
        == "container"
    assert parse_descriptor({"name": "fw", "vnf-type": "vm"}).flavours == ("vm",)


def test_per_flavour_requirements_over_resources() -> None:
    d = parse_descriptor({
        "name": "firewall", "flavours": ["native", "container", "vm"],
        "resources": {"memory-mb": 16, "cpu-percent": 50},
        "implementations": {"container": {"memory-mb": 24, "disk-mb": 8},
                            "vm": {"memory-mb": 256, "disk-mb": 600, "cpu-percent": 100}}})
    assert d.implementation_list() == (
        Implementation("native", 16, 50, 0), Implementation("container", 24, 50, 8),
        Implementation("vm", 256, 100, 600))


@pytest.mark.parametrize(("data", "words"), [
    ({"name": "firewall", "uri": "http://repo/a b.tgz"}, "uri"),
    ({"name": "firewall", "uri": ""}, "uri"),
    ({"name": "firewall", "implementations": {"vm": {"memory-mb": 64}}}, "not among flavours"),
    ({"name": "firewall", "implementations": {"native": {"memory-mb": 0}}}, "memory-mb"),
    ({"name": "firewall", "flavours": ["native", "native"]}, "repeat"),
    ({"name": "firewall", "vnf-type": "Native VM"}, "flavour"),
    ({"name": "firewall", "dependencies": {"capability": [{"name": "x", "type": "firmware"}]}},
     "type"),
    ({"name": "firewall", "dependencies": {"capability": [{"name": "kernel:xfrm"}]}}, "name"),
    ({"name": "firewall", "version": ""}, "version"),
    ({"name": "firewall", "ports": []}, "ports"),
    ({"uri": "http://repo/native/firewall.tgz"}, "name"),
])
def test_bad_templates_name_the_problem(data: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        parse_descriptor(data)
