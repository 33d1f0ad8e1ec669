"""A descriptor's config-schema, checked whole at upload and evaluated safely later. Pure.

- References: every `$ref`/`$dynamicRef` resolves inside the schema ('#...'; nothing is ever
  fetched), and none loops back to where it started without stepping into a property or an
  item (validation would recurse forever).
- Regular expressions (`pattern`, `patternProperties`): run by RE2 (google-re2), which takes
  time linear in the input, instead of Python's backtracking `re`, where a pattern such as
  `(a+)+$` against 30 characters would hold the interpreter for minutes (and `re` keeps the
  GIL: every thread of the orchestrator would stop). A pattern RE2 cannot run (backreferences,
  lookaround) is refused at upload.

Each check raises ValueError naming what is wrong; `validator(schema)` is the draft 2020-12
validator with the RE2 keywords.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import re
import time
import urllib.parse
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import re2  # type: ignore[import-untyped]
import referencing
import referencing.exceptions
import referencing.jsonschema
import rfc3986_validator  # type: ignore[import-untyped]
from jsonschema.exceptions import FormatError, ValidationError

_REF_KEYWORDS = ("$ref", "$dynamicRef")
_IN_PLACE_LISTS = ("allOf", "anyOf", "oneOf")
_IN_PLACE_ONE = ("not", "if", "then", "else")


# uniqueItems compares every pair of items, and jsonschema does it in Python for objects:
# 3000 items took 13 s, and a 1 MB body holds 100,000 (probe of 2026-12-03). An array that
# asks for it must say how long it may be.
MAX_UNIQUE_ITEMS = 256


def check(schema: Any) -> None:
    """All of this module's checks on a schema that is already valid draft 2020-12."""
    nodes = check_local_refs(schema)
    check_patterns(nodes)
    check_costs(nodes)


def check_costs(nodes: list[dict[str, Any]]) -> None:
    """Keywords whose cost grows faster than the config: `uniqueItems` only with a
    `maxItems` of at most MAX_UNIQUE_ITEMS beside it. ValueError otherwise."""
    for n in nodes:
        if n.get("uniqueItems") is True:
            most = n.get("maxItems")
            if not isinstance(most, int) or isinstance(most, bool) or most > MAX_UNIQUE_ITEMS:
                raise ValueError(f"config-schema: uniqueItems needs maxItems of at most "
                                 f"{MAX_UNIQUE_ITEMS} beside it (it compares every pair of "
                                 "items)")


def check_local_refs(schema: Any) -> list[dict[str, Any]]:
    """Every reference resolves inside the schema; returns every subschema (as the draft
    defines them, and every reference's target). Raises ValueError naming the first reference
    that is not local ('#...': remote http://, file:// or relative refs are never fetched) or
    that points at nothing, any `$id` below the root (it would move what '#' means), and
    references that loop in place."""
    spec = referencing.jsonschema.DRAFT202012
    root_id = schema.get("$id", "") if isinstance(schema, dict) else ""
    if not isinstance(root_id, str):
        raise ValueError("config-schema: $id must be a string")
    registry: referencing.Registry[Any] = referencing.Registry().with_resource(
        root_id, spec.create_resource(schema))
    resolver = registry.resolver(base_uri=root_id)
    seen: dict[int, dict[str, Any]] = {}
    in_place: dict[int, list[Any]] = {}  # subschemas applied to the same instance
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if id(node) in seen or not isinstance(node, dict):
            continue
        seen[id(node)] = node
        here = in_place.setdefault(id(node), [])
        here.extend(_in_place(node))
        if node is not schema and "$id" in node:
            raise ValueError(f"config-schema: $id {node['$id']!r} below the root is not "
                             "supported: references must be local ('#...')")
        for kw in _REF_KEYWORDS:
            ref = node.get(kw)
            if ref is None:
                continue
            if not isinstance(ref, str) or not ref.startswith("#"):
                raise ValueError(f"config-schema: {kw} {ref!r} is not a local reference: "
                                 "only '#...' references within the schema are allowed "
                                 "(nothing is fetched)")
            try:
                target = resolver.lookup(ref).contents
            except referencing.exceptions.Unresolvable:
                raise ValueError(f"config-schema: {kw} {ref!r} points at nothing in the "
                                 "schema") from None
            stack.append(target)
            here.append(target)
        stack.extend(sub.contents for sub in spec.create_resource(node).subresources())
    _no_loop(in_place)
    return list(seen.values())


def _in_place(node: dict[str, Any]) -> list[Any]:
    out = [x for k in _IN_PLACE_LISTS if isinstance(node.get(k), list) for x in node[k]]
    out += [node[k] for k in _IN_PLACE_ONE if k in node]
    deps = node.get("dependentSchemas")
    return out + (list(deps.values()) if isinstance(deps, dict) else [])


def _no_loop(in_place: dict[int, list[Any]]) -> None:
    """Refuse references that come back to where they started without stepping into a
    property or an item: validating would recurse forever (RecursionError)."""
    done: set[int] = set()
    for start in list(in_place):
        if start in done:
            continue
        path: set[int] = {start}
        stack: list[tuple[int, int]] = [(start, 0)]
        while stack:
            node, i = stack.pop()
            nexts = [id(x) for x in in_place.get(node, []) if isinstance(x, dict)]
            if i < len(nexts):
                stack.append((node, i + 1))
                nxt = nexts[i]
                if nxt in path:
                    raise ValueError("config-schema: its references loop back to the same "
                                     "place without reaching into a property or item "
                                     "(validation would never end)")
                if nxt not in done:
                    path.add(nxt)
                    stack.append((nxt, 0))
            else:
                path.discard(node)
                done.add(node)


# -- regular expressions, by RE2 -----------------------------------------------------------

@functools.lru_cache(maxsize=256)
def regex(pattern: str) -> Any:
    """The RE2 form of a JSON Schema pattern; ValueError naming it if RE2 cannot run it."""
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        why = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(f"config-schema: pattern {pattern!r} cannot be run in linear time "
                         f"(RE2: {why}); backreferences and lookaround are not supported"
                         ) from None


def check_patterns(nodes: list[dict[str, Any]]) -> None:
    uses_unevaluated = any("unevaluatedProperties" in n for n in nodes)
    for n in nodes:
        if isinstance(n.get("pattern"), str):
            regex(n["pattern"])
        pp = n.get("patternProperties")
        if isinstance(pp, dict):
            if uses_unevaluated:  # jsonschema would run these patterns with Python's re
                raise ValueError("config-schema: patternProperties together with "
                                 "unevaluatedProperties is not supported")
            for p in pp:
                regex(p)


def _pattern(validator: Any, patrn: str, instance: Any, schema: Any
             ) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not regex(patrn).search(instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


def _pattern_properties(validator: Any, pp: dict[str, Any], instance: Any, schema: Any
                        ) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for p, subschema in pp.items():
        rx = regex(p)
        for k, v in instance.items():
            if rx.search(k):
                yield from validator.descend(v, subschema, path=k, schema_path=p)


def _additional_properties(validator: Any, ap: Any, instance: Any, schema: Any
                           ) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    props = schema.get("properties", {})
    patterns = [regex(p) for p in schema.get("patternProperties", {})]
    extras = [k for k in instance if k not in props and not any(r.search(k) for r in patterns)]
    if validator.is_type(ap, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], ap, path=extra)
    elif not ap and extras:
        yield ValidationError("Additional properties are not allowed "
                              f"({', '.join(repr(e) for e in sorted(extras))} unexpected)")


def _strict_integer(checker: Any, instance: Any) -> bool:
    # The draft counts 23.0 as an integer ("a number with a zero fractional part"); JSON
    # readers then hand the NF a float, and `tcp dport 23.0` reached the firewall's nft.
    return isinstance(instance, int) and not isinstance(instance, bool)


_UNIQUE = jsonschema.Draft202012Validator.VALIDATORS["uniqueItems"]


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any
                  ) -> Iterator[ValidationError]:
    # Every pair compared (in Python, for objects): only for an array no longer than its
    # maxItems (else that keyword's error says what is wrong) and MAX_UNIQUE_ITEMS. Every
    # error is collected (iter_errors), so maxItems failing did not spare this one: 6000
    # items held a worker thread for 20 s (2026-12-05).
    most = schema.get("maxItems")
    limit = min(most, MAX_UNIQUE_ITEMS) if isinstance(most, int) else MAX_UNIQUE_ITEMS
    if validator.is_type(instance, "array") and len(instance) > limit:
        if not isinstance(most, int) or len(instance) <= most:  # a schema stored before
            yield ValidationError(f"has {len(instance)} items: more than the "
                                  f"{MAX_UNIQUE_ITEMS} whose uniqueness is checked")
        return
    yield from _UNIQUE(validator, unique, instance, schema)


# A value checked against a "format" is at most this long: the format checkers are
# third-party parsers and regular expressions whose cost on a megabyte is not bounded.
MAX_FORMAT_CHARS = 4096


class _FormatChecker(jsonschema.FormatChecker):
    """jsonschema's checkers (every format its format-nongpl extra knows), each given at
    most MAX_FORMAT_CHARS characters, and "regex" compiled without recursing without end
    (Python's re recurses per nested group: "(" * 100000 raised RecursionError)."""

    def check(self, instance: object, format: str) -> None:
        if isinstance(instance, str) and len(instance) > MAX_FORMAT_CHARS \
                and format in self.checkers:
            raise FormatError(
                f"{len(instance)} characters: longer than the {MAX_FORMAT_CHARS} a "
                f"{format!r} value may have")
        try:
            super().check(instance, format)
        except FormatError:
            raise
        except Exception as exc:  # a third-party checker's own failure: the value's
            raise FormatError(f"cannot be read as a {format!r} ({type(exc).__name__})",
                              cause=exc) from None


def _is_regex(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    with warnings.catch_warnings():  # "possible nested set" and the like: not errors
        warnings.simplefilter("ignore")
        re.compile(instance)
    return True


def _as_uri(iri: str) -> str:
    """RFC 3987 §3.1: an IRI's non-ASCII characters as UTF-8 percent-encoded octets."""
    return "".join(c if ord(c) < 0x80 else urllib.parse.quote(c, safe="") for c in iri)


def _iri_checker(rule: str) -> Callable[[object], bool]:
    """A checker of IRIs of RFC 3986's `rule` ("URI" or "URI_reference")."""
    # rfc3987-syntax (jsonschema's checker, not installed: pyproject.toml) built a parser
    # per value: 0.1 s for 256 characters, 1.8 s for 4 kB, and its import 0.9 s. The IRI
    # mapped to a URI by §3.1 and checked as one by rfc3986-validator takes microseconds.
    def check(instance: object) -> bool:
        return not isinstance(instance, str) or rfc3986_validator.validate_rfc3986(
            _as_uri(instance), rule=rule) is not None
    return check


_FORMATS = _FormatChecker()
_FORMATS.checks("iri")(_iri_checker("URI"))
_FORMATS.checks("iri-reference")(_iri_checker("URI_reference"))
# OverflowError: a repeat count past what re takes ("a{4294967296}").
_FORMATS.checks("regex", raises=(re.error, RecursionError, OverflowError, ValueError))(
    _is_regex)


# -- a time budget for one check -----------------------------------------------------------

class TooCostly(Exception):
    """The check ran past its budget (`budget`)."""


_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "netfate_schema_deadline", default=None)


@contextlib.contextmanager
def budget(seconds: float) -> Iterator[None]:
    """Checks made inside raise TooCostly once they have run `seconds`: every keyword's
    evaluation looks at the clock. Each bound above caps one keyword; their product over a
    1 MB config did not (an "iri" format cost ~2 s per 4 kB value, uniqueItems nested in
    an array 200 x 256^2 comparisons: probe of 2026-12-05)."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def _timed(fn: Any) -> Any:
    def keyword(validator: Any, value: Any, instance: Any, schema: Any
                ) -> Iterator[ValidationError]:
        deadline = _deadline.get()
        if deadline is not None and time.monotonic() > deadline:
            raise TooCostly
        result = fn(validator, value, instance, schema)
        if result is not None:
            yield from result
    return keyword


_KEYWORDS = {**jsonschema.Draft202012Validator.VALIDATORS,
             "pattern": _pattern, "patternProperties": _pattern_properties,
             "additionalProperties": _additional_properties, "uniqueItems": _unique_items}

_Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {  # type: ignore[no-untyped-call]
    k: _timed(fn) for k, fn in _KEYWORDS.items()},
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", _strict_integer))


def validator(schema: Any) -> Any:
    """A draft 2020-12 validator of `schema` whose regular expressions RE2 runs, whose
    "integer" is a JSON number written without a fraction or exponent (23, not 23.0), whose
    formats are asserted (each value at most MAX_FORMAT_CHARS long) and whose uniqueItems
    compares at most MAX_UNIQUE_ITEMS items."""
    return _Validator(schema, format_checker=_FORMATS)
