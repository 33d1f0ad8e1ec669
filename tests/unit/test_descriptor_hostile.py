"""Hostile descriptors (found by the breaker pass): each is refused at parse with an
InvalidInput naming the field, never accepted to fail later on a node or crash."""

from __future__ import annotations

from typing import Any

import pytest

from netfate.descriptor import parse_descriptor
from netfate.errors import InvalidInput
from netfate.flavours import check_flavour

BASE: dict[str, Any] = {"name": "firewall", "vnf-type": "native"}


@pytest.mark.parametrize(("patch", "words"), [
    # a trailing newline passed every `re.match(r"^...$")` check ('$' matches before it)
    ({"name": "firewall\n"}, "NF name"),
    ({"ports": [{"name": "lan\n"}]}, "port name"),
    ({"vnf-type": "native\n"}, "flavour"),
    ({"flavours": ["native", "container\n"]}, "flavour"),
    ({"linux-capabilities": ["CAP_NET_ADMIN\n"]}, "linux capability"),
    # runc refuses an unknown capability only when the container is created
    ({"linux-capabilities": ["CAP_FOO_BAR"]}, "capabilities\\(7\\)"),
    ({"linux-capabilities": ["cap_net_admin"]}, "capabilities\\(7\\)"),
    ({"version": "../../etc"}, "version"),
    ({"version": "1\n"}, "version"),
    # fullwidth digits were accepted; image tags (<nf>-<version>) are ASCII
    ({"version": "\uff11.\uff10"}, "printable ASCII"),
])
def test_bad_names_are_refused(patch: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        parse_descriptor({**BASE, **patch})


def test_capabilities_known_and_repeated_are_kept_once() -> None:
    d = parse_descriptor({**BASE, "linux-capabilities": ["CAP_NET_ADMIN", "CAP_NET_RAW",
                                                         "CAP_NET_ADMIN"]})
    assert d.linux_capabilities == ("CAP_NET_ADMIN", "CAP_NET_RAW")


def test_check_flavour_refuses_a_trailing_newline() -> None:
    with pytest.raises(ValueError, match="flavour"):
        check_flavour("native\n")


def test_a_config_schema_nested_hundreds_deep_is_refused_not_a_crash() -> None:
    deep: dict[str, Any] = {"type": "object"}
    for _ in range(300):
        deep = {"type": "object", "properties": {"a": deep}}
    with pytest.raises(InvalidInput, match="nested too deeply"):
        parse_descriptor({**BASE, "config-schema": deep})


def test_a_filled_default_is_a_copy_not_the_schemas_own_value() -> None:
    d = parse_descriptor({**BASE, "config-schema": {
        "type": "object", "properties": {"rules": {"type": "array", "default": []}}}})
    d.validate_config({})["rules"].append({"action": "deny"})
    assert d.validate_config({}) == {"rules": []}


def test_a_huge_integer_in_a_descriptor_is_invalid_input_not_a_value_error() -> None:
    """yaml's int() of over 4300 digits raised ValueError: a 500 from the upload route."""
    from netfate.bundle import inspect_bundle
    from tests.unit.hostile_docs import bundle
    text = "name: probe\nversion: 1" + "0" * 5000 + "\nports: [{name: lan}]\n"
    with pytest.raises(InvalidInput, match="cannot be read"):
        inspect_bundle(bundle(text))


@pytest.mark.parametrize(("patch", "words"), [
    # pydantic's lax mode read `true` as 1 and '16' as 16 (probe of 2026-12-05)
    ({"resources": {"memory-mb": True}}, "memory-mb"),
    ({"resources": {"memory-mb": "16"}}, "memory-mb"),
    ({"resources": {"cpu-percent": 50.0}}, "cpu-percent"),
    ({"multitenancy": "yes"}, "multitenancy"),
    ({"multitenancy": 1}, "multitenancy"),
    ({"state": {"exportable": "true"}}, "exportable"),
])
def test_numbers_and_flags_are_yamls_own(patch: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        parse_descriptor({**BASE, **patch})
