"""The NF descriptor: the NNF paper's template (Fig. 3), extended. Pure."""

from __future__ import annotations

import re
from typing import Any, Literal

import jsonschema
import referencing
import referencing.exceptions
import referencing.jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from netfate.errors import Conflict, InvalidInput
from netfate.flavours import DEFAULT_FLAVOUR, check_flavour

LIFECYCLE = (
    "create", "start", "stop", "update", "delete", "pause",
    "export-state", "import-state", "status",
)
REQUIRED_SCRIPTS = ("start", "stop")
# The flavours the papers name. Descriptors may name others: a flavour is whatever a compute
# driver registers (netfate.drivers.registry), so a new one needs no change here.
FLAVOURS = ("native", "container", "vm")
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_PORT = re.compile(r"^[a-z][a-z0-9]{0,14}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Port(_Model):
    name: str
    role: Literal["lan", "wan", "mgmt", "other"] = "other"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _PORT.match(v) or v == "lo":
            raise ValueError(f"port name {v!r} must be 1-15 of a-z0-9, starting with a letter")
        return v


class Capability(_Model):
    name: str = Field(min_length=1, max_length=64)
    type: Literal["package", "kernel", "hardware"] = "package"


class Dependencies(_Model):
    capability: tuple[Capability, ...] = ()


class ResourceRequest(_Model):
    memory_mb: int = Field(default=32, ge=1, le=65536, alias="memory-mb")
    cpu_percent: int = Field(default=100, ge=1, le=1000, alias="cpu-percent")


class StateSpec(_Model):
    exportable: bool = False


class Descriptor(_Model):
    name: str
    version: str = Field(min_length=1, max_length=32)
    description: str = ""
    vnf_type: str = Field(default=DEFAULT_FLAVOUR, alias="vnf-type")
    # In order of preference: a node runs the first one it has a compute driver for.
    flavours: tuple[str, ...] = Field(default=(DEFAULT_FLAVOUR,), min_length=1)
    multitenancy: bool = True
    ports: tuple[Port, ...] = Field(min_length=1, max_length=8)
    dependencies: Dependencies = Dependencies()
    resources: ResourceRequest = ResourceRequest()
    state: StateSpec = StateSpec()
    config_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"}, alias="config-schema"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"NF name {v!r} must be a-z0-9 and '-', starting with a letter")
        return v

    @field_validator("vnf_type")
    @classmethod
    def _vnf_type(cls, v: str) -> str:
        return check_flavour(v)

    @field_validator("flavours")
    @classmethod
    def _flavours(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for f in v:
            check_flavour(f)
        return v

    @model_validator(mode="after")
    def _check(self) -> Descriptor:
        names = [p.name for p in self.ports]
        if len(set(names)) != len(names):
            raise ValueError(f"port names repeat: {names}")
        if self.vnf_type not in self.flavours:
            raise ValueError(f"vnf-type {self.vnf_type!r} is not among flavours {self.flavours}")
        try:
            jsonschema.Draft202012Validator.check_schema(self.config_schema)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"config-schema is not a valid JSON Schema: {exc.message}") from exc
        check_local_refs(self.config_schema)
        return self

    @property
    def capabilities(self) -> list[str]:
        return [c.name for c in self.dependencies.capability]

    def validate_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """Validate config against the schema, with top-level defaults filled in."""
        if not isinstance(config, dict):
            raise InvalidInput(f"{self.name}: config must be a JSON object")
        filled = dict(config)
        for key, prop in (self.config_schema.get("properties") or {}).items():
            if key not in filled and isinstance(prop, dict) and "default" in prop:
                filled[key] = prop["default"]
        try:
            check_local_refs(self.config_schema)
            validator = jsonschema.Draft202012Validator(
                self.config_schema, format_checker=jsonschema.FormatChecker()
            )
            errors = sorted(validator.iter_errors(filled), key=lambda e: list(e.path))
        except (ValueError, referencing.exceptions.Unresolvable, jsonschema.SchemaError,
                RecursionError) as exc:
            # Defence in depth: a package stored before its schema was checked whole (or a
            # schema whose references loop) is the package's fault, never a 500.
            raise Conflict(f"{self.name}: its package's config-schema cannot be used "
                           f"({type(exc).__name__}: {str(exc)[:300]}); upload a fixed "
                           "package") from None
        if errors:
            e = errors[0]
            where = "/".join(str(p) for p in e.path) or "(top)"
            raise InvalidInput(f"{self.name}: config at {where}: {e.message}")
        return filled


_REF_KEYWORDS = ("$ref", "$dynamicRef")


def check_local_refs(schema: Any) -> None:
    """Every reference in a JSON Schema (draft 2020-12) resolves inside the schema itself.

    Walks every subschema (as the draft defines them, and every reference's target), and
    raises ValueError naming the first reference that is not local ('#...': remote http://,
    file:// or relative refs are never fetched) or that points at nothing, and any `$id`
    below the root (it would move what '#' means)."""
    spec = referencing.jsonschema.DRAFT202012
    root_id = schema.get("$id", "") if isinstance(schema, dict) else ""
    if not isinstance(root_id, str):
        raise ValueError("config-schema: $id must be a string")
    registry: referencing.Registry[Any] = referencing.Registry().with_resource(
        root_id, spec.create_resource(schema))
    resolver = registry.resolver(base_uri=root_id)
    seen: set[int] = set()
    in_place: dict[int, list[Any]] = {}  # subschemas applied to the same instance
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if id(node) in seen or not isinstance(node, dict):
            continue
        seen.add(id(node))
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
    _no_loop(schema, in_place)


_IN_PLACE_LISTS = ("allOf", "anyOf", "oneOf")
_IN_PLACE_ONE = ("not", "if", "then", "else")


def _in_place(node: dict[str, Any]) -> list[Any]:
    out = [x for k in _IN_PLACE_LISTS if isinstance(node.get(k), list) for x in node[k]]
    out += [node[k] for k in _IN_PLACE_ONE if k in node]
    deps = node.get("dependentSchemas")
    return out + (list(deps.values()) if isinstance(deps, dict) else [])


def _no_loop(schema: Any, in_place: dict[int, list[Any]]) -> None:
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


def parse_descriptor(data: Any, source: str = "descriptor") -> Descriptor:
    """Parse a descriptor, turning every problem into one InvalidInput that names it."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{source}: must be a mapping, got {type(data).__name__}")
    try:
        return Descriptor.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "(top)"
            problems.append(f"{loc}: {err['msg']}")
        raise InvalidInput(f"{source}: " + "; ".join(problems)) from None
