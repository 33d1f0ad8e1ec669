"""Bounded YAML: the one loader for every YAML document a user hands in (NF descriptors,
topology files). Pure.

PyYAML's safe loader refuses arbitrary objects but not size: a few hundred bytes of nested
anchors and aliases (the "billion laughs" shape, CVE-2003-1564's YAML form) expand to billions
of nodes in whatever walks the result next (a JSON Schema check, pydantic, json.dumps). This
loader composes the node graph first and refuses, before constructing anything, a document
that is over `max_bytes`, uses more than `max_aliases` aliases, nests deeper than `max_depth`,
would expand to more than `max_nodes` nodes once aliases are followed (or by more than
`max_alias_nodes` through aliases), or holds a recursive alias. What it builds is JSON's
data model: mappings with string keys, lists, str, int, finite float, bool, None (timestamps stay
strings; !!binary, !!set and other tags are refused; a key given twice in one mapping
is refused, as YAML 1.2 requires).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from netfate.errors import InvalidInput


@dataclass(frozen=True)
class Limits:
    """Bounds on one document. Sizes in bytes (of its UTF-8 text) and in nodes."""

    max_bytes: int = 1024 * 1024
    max_aliases: int = 64
    max_depth: int = 64
    max_nodes: int = 100_000
    max_alias_nodes: int = 1_000  # nodes that following aliases may add, in all


DEFAULT = Limits()


class _Refused(Exception):
    def __init__(self, why: str, node_or_event: Any = None) -> None:
        mark = getattr(node_or_event, "start_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        super().__init__(why + where)


_JSON_TAGS = {
    "tag:yaml.org,2002:null", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float", "tag:yaml.org,2002:str", "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:map",
}


_KEY_TAGS = {"tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"}  # "<<" merges a mapping


class _Loader(yaml.SafeLoader):
    """SafeLoader (pure Python, so composing can be watched) counting aliases and depth."""

    limits: Limits = DEFAULT

    def __init__(self, stream: str, limits: Limits) -> None:
        super().__init__(stream)
        self.limits = limits
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > self.limits.max_aliases:
                raise _Refused(f"more than {self.limits.max_aliases} aliases",
                               self.peek_event())  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > self.limits.max_depth:
                raise _Refused(f"nested deeper than {self.limits.max_depth} levels",
                               self.peek_event())  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _finite_float(loader: yaml.SafeLoader, node: ScalarNode) -> float:
    # JSON has no NaN or infinity (RFC 8259 §6): `.nan`, `.inf` and 1e400 were stored as
    # null by the JSON columns, and the document read back was another one.
    value = float(loader.construct_yaml_float(node))
    if not math.isfinite(value):
        raise _Refused(f"{node.value!r} is not a finite number (JSON has no NaN or "
                       "infinity)", node)
    return value


_Loader.add_constructor("tag:yaml.org,2002:float", _finite_float)

# Timestamps stay strings (JSON has none): drop the implicit resolver for them.
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _expanded_size(root: Node, limits: Limits) -> int:
    """Nodes in the document once every alias is followed (a shared node counts each time it
    is reached), without expanding it: each distinct node's size is computed once. Refuses
    a cycle (a recursive alias) and any tag outside JSON's data model."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            total = 1 + sum(sizes[id(c)] for c in _children(node))
            if total > limits.max_nodes:
                raise _Refused(f"expands to more than {limits.max_nodes} nodes (aliases "
                               "followed)", node)
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise _Refused("a recursive alias (a node that contains itself)", node)
        if node.tag not in _JSON_TAGS and node.tag != "tag:yaml.org,2002:merge":
            raise _Refused(f"tag {node.tag!r} is not allowed: only JSON's types", node)
        if isinstance(node, MappingNode):
            keys: set[str] = set()
            for k, _ in node.value:
                if not (isinstance(k, ScalarNode) and k.tag in _KEY_TAGS):
                    raise _Refused("a mapping key that is not a string", k)
                # YAML 1.2 §3.2.1.1: keys are unique. PyYAML keeps the last silently, so
                # `name: probe` then `name: other` would describe a different NF than it reads.
                if k.value in keys:
                    raise _Refused(f"the key {k.value!r} is given twice", k)
                keys.add(k.value)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    added = sizes[id(root)] - len(sizes)
    if added > limits.max_alias_nodes:
        raise _Refused(f"aliases expand it by {added} nodes; the limit is "
                       f"{limits.max_alias_nodes}", root)
    return sizes[id(root)]


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [x for pair in node.value for x in pair]
    return []


def load(text: str | bytes, source: str = "document", limits: Limits = DEFAULT) -> Any:
    """The one YAML document in `text` as JSON-model data (None if empty).

    Raises InvalidInput naming `source` and the problem (and its line) when the text is not
    UTF-8, not YAML, holds several documents, or breaks a bound in `limits`.
    """
    size = len(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    if size > limits.max_bytes:
        raise InvalidInput(f"{source}: {size} bytes; the limit is {limits.max_bytes}")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{source}: not UTF-8 text ({exc.reason} at byte "
                               f"{exc.start})") from None
    try:
        # The reader checks every character as it is made: a control character (NUL, ESC,
        # a lone surrogate) is a ReaderError here, a YAMLError like any other.
        loader = _Loader(text, limits)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source}: not valid YAML: {exc}") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, limits)
        return loader.construct_document(node)
    except _Refused as exc:
        raise InvalidInput(f"{source}: refused: {exc}") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:  # the depth bound should come first; never a crash
        raise InvalidInput(f"{source}: nested too deeply") from None
    except ValueError as exc:  # e.g. an int of over 4300 digits (int's conversion limit)
        raise InvalidInput(f"{source}: a value cannot be read: {str(exc)[:120]}") from None
    finally:
        loader.dispose()
