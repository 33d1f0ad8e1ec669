import pytest

from netfate.descriptor import parse_descriptor
from netfate.errors import InvalidInput

GOOD = {
    "name": "firewall", "version": "1.0.0", "vnf-type": "native", "flavours": ["native"],
    "ports": [{"name": "lan", "role": "lan"}, {"name": "wan", "role": "wan"}],
    "dependencies": {"capability": [{"name": "nftables", "type": "package"}]},
    "resources": {"memory-mb": 16, "cpu-percent": 50},
    "config-schema": {
        "type": "object", "additionalProperties": False,
        "properties": {"rate": {"type": "integer", "minimum": 1, "default": 10}},
    },
}


def test_good_descriptor_parses_with_capabilities() -> None:
    d = parse_descriptor(GOOD)
    assert d.capabilities == ["nftables"]
    assert d.resources.memory_mb == 16
    assert [p.name for p in d.ports] == ["lan", "wan"]


def test_config_defaults_filled_and_errors_named() -> None:
    d = parse_descriptor(GOOD)
    assert d.validate_config({}) == {"rate": 10}
    with pytest.raises(InvalidInput, match="rate"):
        d.validate_config({"rate": 0})
    with pytest.raises(InvalidInput, match="extra"):
        d.validate_config({"extra": 1})


@pytest.mark.parametrize(("patch", "words"), [
    ({"name": None}, "name"),
    ({"ports": []}, "ports"),
    ({"ports": [{"name": "lan"}, {"name": "lan"}]}, "repeat"),
    ({"ports": [{"name": "Bad Name"}]}, "port name"),
    ({"vnf-type": "vm"}, "vnf-type"),
    ({"flavours": ["Native VM"]}, "flavour"),
    ({"flavours": []}, "flavours"),
    ({"config-schema": {"type": 12}}, "config-schema"),
    ({"resources": {"memory-mb": 0}}, "memory-mb"),
    ({"surprise": True}, "surprise"),
])
def test_bad_descriptors_name_the_problem(patch: dict[str, object], words: str) -> None:
    data = {**GOOD, **patch}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(InvalidInput, match=words):
        parse_descriptor(data)


def test_not_a_mapping() -> None:
    with pytest.raises(InvalidInput, match="mapping"):
        parse_descriptor(["x"])


def test_flavours_are_open_names_in_order_of_preference() -> None:
    # A flavour is whatever a compute driver registers (netfate.compute): no list to extend.
    d = parse_descriptor({**GOOD, "flavours": ["wasm", "native"]})
    assert d.flavours == ("wasm", "native")
