"""Bounded YAML (netfate.safe_yaml, issue #16 input 2 and its kind): every document a user
hands in is parsed with bounds on aliases, depth and size, as JSON's data model."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import yaml

from netfate import catalogue, safe_yaml
from netfate.bundle import BundleStore, inspect_bundle
from netfate.errors import InvalidInput
from netfate.testbed.topology import parse_topology
from tests.unit.hostile_docs import bundle, laughs, within


def test_issue_billion_laughs_descriptor_is_refused_at_once(tmp_path: Path) -> None:
    """9 levels of anchors, 3 aliases each, in a config-schema: parsing it whole used to take
    minutes (the JSON Schema check walks 3**9 subschemas); it is refused before."""
    data = bundle(laughs(9))
    for fn in (inspect_bundle, BundleStore(tmp_path).add):
        with pytest.raises(InvalidInput, match=r"descriptor\.yaml: refused: .*expand"):
            within(10, fn, data)
    with pytest.raises(InvalidInput, match="expand"):
        within(10, parse_topology, laughs(9), "topology")


@pytest.mark.parametrize(("text", "words"), [
    ("a: &a [*a]", "recursive alias"),
    ("a: &a {b: *a}", "recursive alias"),
    ("a: &a x\n" + "".join(f"b{i}: *a\n" for i in range(65)), "more than 64 aliases"),
    ("[" * 70 + "]" * 70, "deeper than 64"),
    ("a: !!binary aGVsbG8=", "tag"),
    ("a: !!set {x}", "tag"),
    ("a: !!python/object:os.system {}", "tag"),
    ("a: !custom x", "tag"),
    ("? [1, 2]\n: x", "key that is not a string"),
    ("1: x", "key that is not a string"),
    ("a: 1\n---\nb: 2", "YAML"),
    ("a: [unclosed", "YAML"),
    ("name: probe\nversion: '1'\nname: other", "'name' is given twice"),
    ("a: {b: 1, b: 2}", "'b' is given twice"),
    ("name: a\x00b\n", "not valid YAML"),  # control characters: the reader's own error
    ("name: a\x1bb\n", "not valid YAML"),
    ("name: a\ud800b\n", "not valid YAML"),
    # JSON has no NaN or infinity: stored as null, the document read back was another one
    ("maximum: .nan", "'.nan' is not a finite number"),
    ("a: [1, .inf]", "'.inf' is not a finite number"),
    ("a: {b: -.Inf}", "'-.Inf' is not a finite number"),
    ("a: !!float .NaN", "is not a finite number"),
])
def test_refused(text: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        within(10, safe_yaml.load, text, "doc")


def test_size_and_alias_expansion_bounds() -> None:
    with pytest.raises(InvalidInput, match="doc: 2000 bytes; the limit is 1000"):
        safe_yaml.load("a" * 2000, "doc", safe_yaml.Limits(max_bytes=1000))
    with pytest.raises(InvalidInput, match="UTF-8"):
        safe_yaml.load(b"a: \xff", "doc")
    # Few aliases, but each of a big node: bounded by what they add, not by their count.
    big = "x: &x [" + ", ".join(["1"] * 600) + "]\ny: *x\nz: *x\n"
    with pytest.raises(InvalidInput, match="aliases expand it by 1202 nodes; the limit is 1000"):
        safe_yaml.load(big, "doc")
    with pytest.raises(InvalidInput, match="more than 100 nodes"):
        safe_yaml.load("[" + ", ".join(["1"] * 200) + "]", "doc", safe_yaml.Limits(max_nodes=100))


def test_plain_documents_load_as_json_data() -> None:
    assert safe_yaml.load("", "doc") is None
    assert safe_yaml.load("a: &a {b: 1}\nc: *a\nd: 2020-01-01\ne: [1.5, true, null]\n",
                          "doc") == {"a": {"b": 1}, "c": {"b": 1}, "d": "2020-01-01",
                                     "e": [1.5, True, None]}
    assert safe_yaml.load("base: &b {x: 1}\nm:\n  <<: *b\n  y: 2\n", "doc") == {
        "base": {"x": 1}, "m": {"x": 1, "y": 2}}


def test_shipped_documents_load_as_before() -> None:
    for name in catalogue.NAMES:
        text = (Path(str(resources.files("netfate.catalogue"))) / name / "descriptor.yaml") \
            .read_text()
        assert safe_yaml.load(text, name) == yaml.safe_load(text)
    for topo in ("default.yaml", "three-cpe.yaml"):
        text = resources.files("netfate.testbed").joinpath(topo).read_text()
        assert safe_yaml.load(text, topo) == yaml.safe_load(text)
