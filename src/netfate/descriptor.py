"""The NF descriptor: the NNF paper's template (Fig. 3), extended. Pure."""

from __future__ import annotations

import re
from typing import Any, Literal

import jsonschema
import referencing.exceptions
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from netfate import schema_check
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
_CAP = re.compile(r"^CAP_[A-Z_]{2,30}$")


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
    # Linux capabilities the NF's processes need where a flavour confines them (a container
    # gets these and no others); e.g. CAP_NET_ADMIN for nft, ip and conntrack.
    linux_capabilities: tuple[str, ...] = Field(default=(), alias="linux-capabilities",
                                                max_length=41)
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

    @field_validator("linux_capabilities")
    @classmethod
    def _caps(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for cap in v:
            if not _CAP.match(cap):
                raise ValueError(f"linux capability {cap!r} must look like CAP_NET_ADMIN")
        return tuple(dict.fromkeys(v))

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
        schema_check.check(self.config_schema)  # local refs only, no loops, RE2 patterns
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
            schema_check.check(self.config_schema)
            validator = schema_check.validator(self.config_schema)
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
