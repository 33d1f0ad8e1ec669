"""A descriptor's config-schema is checked whole at upload (issue #16 input 3 and its kind):
every reference resolves inside it, nothing is fetched; a schema that still fails when a
config is checked is a 409 (Conflict), never an unexpected error."""

from __future__ import annotations

import re
from typing import Any

import pytest

from netfate.bundle import inspect_bundle
from netfate.descriptor import Descriptor, parse_descriptor
from netfate.errors import Conflict, InvalidInput
from tests.unit.hostile_docs import MISSING_DEFS, REMOTE_REF, bundle, with_schema, within


def test_issue_missing_defs_and_remote_ref_are_refused_at_upload() -> None:
    with pytest.raises(InvalidInput, match=r"\$ref '#/\$defs/rule' points at nothing"):
        inspect_bundle(bundle(with_schema(MISSING_DEFS)))
    with pytest.raises(InvalidInput, match=r"\$ref 'http://example.com/r.json' is not a local"):
        inspect_bundle(bundle(with_schema(REMOTE_REF)))


@pytest.mark.parametrize(("schema", "words"), [
    ({"$ref": "file:///etc/passwd"}, "'file:///etc/passwd' is not a local"),
    ({"$ref": "other.json#/x"}, "'other.json#/x' is not a local"),
    ({"$dynamicRef": "https://x/y#meta"}, r"\$dynamicRef 'https://x/y#meta' is not a local"),
    ({"$ref": "#nowhere"}, "'#nowhere' points at nothing"),
    ({"$defs": {"a": {"$ref": "#/$defs/b"}}, "$ref": "#/$defs/a"}, "'#/\\$defs/b' points at"),
    # a reference into a part of the schema no keyword names is followed, and checked too
    ({"definitions": {"a": {"$ref": "http://evil/x"}}, "$ref": "#/definitions/a"},
     "'http://evil/x' is not a local"),
    ({"properties": {"a": {"$id": "http://x/y", "type": "string"}}}, r"\$id 'http://x/y'"),
    ({"items": {"allOf": [{"not": {"$ref": "#/$defs/none"}}]}}, "points at nothing"),
    # references that loop without stepping into the config: validation would never end
    ({"$ref": "#"}, "loop"),
    ({"$defs": {"a": {"allOf": [{"$ref": "#/$defs/b"}]}, "b": {"not": {"$ref": "#/$defs/a"}}},
      "$ref": "#/$defs/a"}, "loop"),
])
def test_refused_references(schema: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        parse_descriptor(with_schema(schema))


@pytest.mark.parametrize("schema", [
    {"$defs": {"rule": {"type": "string"}}, "properties": {"r": {"$ref": "#/$defs/rule"}}},
    {"$id": "https://example.com/s", "$defs": {"rule": {"type": "string"}},
     "properties": {"r": {"$ref": "#/$defs/rule"}}},
    {"$defs": {"rule": {"$anchor": "rule", "type": "string"}},
     "properties": {"r": {"$ref": "#rule"}}},
    {"properties": {"tree": {"type": "array", "items": {"$ref": "#/properties/tree"}}}},
    {"properties": {"$ref": {"type": "string"}}},  # a property named "$ref" is no reference
    {"type": "object"},
    {"properties": {"child": {"$ref": "#"}}},  # recursion through a property ends
])
def test_local_references_are_fine(schema: dict[str, Any]) -> None:
    d = parse_descriptor(with_schema(schema))
    d.validate_config({})


def test_a_broken_schema_at_config_time_is_a_conflict() -> None:
    """Defence in depth: a descriptor stored before its schema was checked whole, or a schema
    whose references loop without consuming the config, is a 409, not a 500."""
    stored = Descriptor.model_construct(**parse_descriptor(with_schema({})).__dict__)
    for schema in (MISSING_DEFS, REMOTE_REF,
                   {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}):
        object.__setattr__(stored, "config_schema", schema)
        with pytest.raises(Conflict, match="config-schema cannot be used"):
            stored.validate_config({"rules": {"x": 1}})
    # A config that breaks a sound schema is still the caller's input error.
    d = parse_descriptor(with_schema({"properties": {"n": {"type": "integer"}}}))
    with pytest.raises(InvalidInput, match="config at n"):
        d.validate_config({"n": "x"})


EVIL = "^(a+)+$"  # backtracks exponentially in Python's re on "aaa...a!"


def test_patterns_run_in_linear_time() -> None:
    """A config-schema's patterns are run by RE2: a pattern that would hold Python's re (and
    the GIL, so the whole orchestrator) for minutes answers at once."""
    d = parse_descriptor(with_schema({
        "properties": {"s": {"type": "string", "pattern": EVIL},
                       "m": {"type": "object", "patternProperties": {EVIL: {"type": "integer"}},
                             "additionalProperties": False}}}))
    bad = "a" * 64 + "!"
    with pytest.raises(InvalidInput, match="does not match"):
        within(10, d.validate_config, {"s": bad})
    with pytest.raises(InvalidInput, match="Additional properties"):
        within(10, d.validate_config, {"m": {bad: 1}})
    with pytest.raises(InvalidInput, match="is not of type 'integer'"):
        within(10, d.validate_config, {"m": {"aaa": "x"}})
    assert d.validate_config({"s": "aaa", "m": {"aa": 1}}) == {"s": "aaa", "m": {"aa": 1}}


@pytest.mark.parametrize(("schema", "words"), [
    ({"properties": {"s": {"pattern": r"(a)\1"}}}, "linear time"),
    ({"properties": {"s": {"pattern": "(?=a)b"}}}, "linear time"),
    ({"patternProperties": {"(?<!x)y": {}}}, "linear time"),
    ({"patternProperties": {"^a": {}}, "unevaluatedProperties": False}, "unevaluated"),
])
def test_patterns_re2_cannot_run_are_refused(schema: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        parse_descriptor(with_schema(schema))


@pytest.mark.parametrize("value", [23.0, 2.3e1, 1e400, True])
def test_an_integer_is_written_without_a_fraction(value: Any) -> None:
    """The draft counts 23.0 as an integer and the NF got a float: `tcp dport 23.0` reached
    the firewall's nft (new-user probe, 12-03). The same for every catalogue NF's integers."""
    d = parse_descriptor(with_schema({"properties": {"n": {"type": "integer"}}}))
    with pytest.raises(InvalidInput, match=r"config at n: .* is not of type 'integer'"):
        d.validate_config({"n": value})
    assert d.validate_config({"n": 23}) == {"n": 23}


def test_the_firewalls_port_as_a_float_is_refused_naming_the_rule() -> None:
    from netfate import catalogue, safe_yaml
    from netfate.bundle import DESCRIPTOR, DESCRIPTOR_LIMITS

    raw = (catalogue.source_dir("firewall") / DESCRIPTOR).read_bytes()
    desc = parse_descriptor(safe_yaml.load(raw, DESCRIPTOR, DESCRIPTOR_LIMITS), DESCRIPTOR)
    with pytest.raises(InvalidInput, match=r"config at rules/0/dport: 23.0 is not of type"):
        desc.validate_config({"rules": [{"action": "deny", "proto": "tcp", "dport": 23.0}]})


@pytest.mark.parametrize(("schema", "words"), [
    ({"type": "object", "properties": {"n": {"type": "integer", "default": "notint"}}},
     "default of 'n'"),
    ({"type": "object", "required": ["t"], "properties": {"t": {"readOnly": True}}},
     "both required and readOnly"),
    ({"type": "array"}, "root must be type object"),
    ({"$schema": "http://json-schema.org/draft-04/schema#", "type": "object"}, "$schema"),
    ({"type": "object", "properties": {"l": {"type": "array", "uniqueItems": True}}},
     "uniqueItems needs maxItems"),
    ({"type": "object", "properties": {"l": {"type": "array", "uniqueItems": True,
                                             "maxItems": 100000}}}, "uniqueItems"),
])
def test_a_schema_no_config_could_pass_or_too_costly_is_refused_at_upload(
        schema: dict[str, object], words: str) -> None:
    """Each was taken at upload, and then every config of the package failed with the
    caller blamed, or took minutes to check (probe of 2026-12-03)."""
    from netfate.descriptor import parse_descriptor
    from netfate.errors import InvalidInput

    with pytest.raises(InvalidInput, match=re.escape(words)):
        parse_descriptor({"name": "probe", "version": "1", "ports": [{"name": "lan"}],
                          "config-schema": schema})


def test_unique_items_is_not_compared_past_max_items() -> None:
    """Every error was collected, so uniqueItems compared all pairs even after maxItems had
    failed: 6000 objects held a worker thread for 20 s, a 1 MB body about an hour (probe of
    2026-12-05). Now bounded however long the array is."""
    d = parse_descriptor(with_schema({"properties": {"l": {
        "type": "array", "uniqueItems": True, "maxItems": 10}}}))
    with pytest.raises(InvalidInput, match=r"config at l: .* is too long"):
        within(2, d.validate_config, {"l": [{"a": i} for i in range(80_000)]})
    with pytest.raises(InvalidInput, match="non-unique"):
        d.validate_config({"l": [{"a": 1}, {"a": 1}]})
    assert d.validate_config({"l": [{"a": 1}, {"a": 2}]}) == {"l": [{"a": 1}, {"a": 2}]}


@pytest.mark.parametrize(("fmt", "bad", "good"), [
    ("date-time", "9" * 800, "2026-12-05T10:00:00Z"),
    ("uri", "not a uri", "https://example.net/x"),
    ("hostname", "-bad-.example", "cpe1.example.net"),
    ("json-pointer", "no/slash", "/a/b"),
    ("uri-template", "{unclosed", "/users/{id}"),
    ("regex", "(" * 100_000 + ")" * 100_000, "a+b"),
    ("regex", "(" * 2_000 + ")" * 2_000, "(a|b)"),
    ("regex", "a{4294967296}", "a{3}"),  # OverflowError in re: was a 500
    ("ipv4", "x" * 1_000_000, "10.0.0.1"),
])
def test_formats_are_asserted_in_bounded_time(fmt: str, bad: str, good: str) -> None:
    """date-time, uri, hostname... were not checked at all (their checkers' libraries were
    missing), and a deeply nested "regex" raised RecursionError, reported as the package's
    fault (409) rather than the caller's (probe of 2026-12-05)."""
    d = parse_descriptor(with_schema({"properties": {"v": {"type": "string",
                                                           "format": fmt}}}))
    with pytest.raises(InvalidInput, match="config at v: "):
        within(2, d.validate_config, {"v": bad})
    assert d.validate_config({"v": good}) == {"v": good}


@pytest.mark.parametrize("number", [".nan", ".inf", "-.inf"])
def test_a_non_finite_number_in_a_config_schema_is_refused_at_upload(number: str) -> None:
    """`maximum: .nan` was stored as null: the package was taken (201) and every use of it
    then failed with 409 (probe of 2026-12-05)."""
    text = ("name: probe\nversion: '1'\nports: [{name: lan}]\nconfig-schema:\n"
            f"  type: object\n  properties: {{x: {{type: number, maximum: {number}}}}}\n")
    with pytest.raises(InvalidInput, match="not a finite number"):
        inspect_bundle(bundle(text))


@pytest.mark.parametrize(("schema", "config"), [
    # uniqueItems within its bound in every inner array, 200 of them: 200 x 256^2
    ({"type": "array", "maxItems": 256,
      "items": {"type": "array", "maxItems": 256, "uniqueItems": True}},
     [[{"a": i} for i in range(256)]] * 200),
    # an enum of 1000 failed by 20000 items past maxItems: an error each, the enum copied
    ({"type": "array", "maxItems": 4, "items": {"enum": list(range(1000))}}, ["z"] * 20_000),
])
def test_a_config_costly_to_check_is_refused_within_the_budget(
        schema: dict[str, Any], config: Any) -> None:
    """Each keyword was bounded, not their product over a 1 MB config: 7 s and 2.6 s here,
    ~20-30 s at 1 MB (probe of 2026-12-05)."""
    import time

    from netfate.descriptor import CHECK_SECONDS

    d = parse_descriptor(with_schema({"properties": {"v": schema}}))
    t0 = time.monotonic()
    with pytest.raises(InvalidInput, match=r"config at v|takes more than"):
        within(CHECK_SECONDS + 3, d.validate_config, {"v": config})
    assert time.monotonic() - t0 < CHECK_SECONDS + 1.5


def test_iris_are_checked_in_microseconds() -> None:
    """rfc3987-syntax took 0.1 s for a 256-character IRI and 1.8 s for 4 kB: four of them
    in one config took 8 s to be accepted (probe of 2026-12-05)."""
    d = parse_descriptor(with_schema({"properties": {"v": {
        "type": "array", "items": {"type": "string", "format": "iri"}}}}))
    good = ["http://" + "a" * 4089, "https://例え.テスト/パス?q=ü#frag"]
    within(1, d.validate_config, {"v": good * 50})
    with pytest.raises(InvalidInput, match="is not a 'iri'"):
        d.validate_config({"v": ["not an iri"]})
    ref = parse_descriptor(with_schema({"properties": {"v": {"type": "string",
                                                             "format": "iri-reference"}}}))
    assert ref.validate_config({"v": "../ü/x"}) == {"v": "../ü/x"}
    with pytest.raises(InvalidInput, match="iri-reference"):
        ref.validate_config({"v": "http://[::1"})
