"""The NF descriptor: the NNF paper's template (Fig. 3), extended. Pure.

The template as the paper prints it (name, uri, vnf-type, multitenancy, dependencies) is a
valid descriptor: what it leaves out is defaulted or derived. `version` defaults to "0";
`flavours` is derived from `vnf-type`; `ports` defaults to the two the paper's service graph
joins an NF to (lan and wan); `uri` (where the paper's driver downloads the lifecycle scripts)
is kept as information only: a bundle carries its scripts and is identified by its sha256, so
nothing is ever fetched from it.

Capabilities it depends on are of three kinds (NNF paper IV.A and III-C): a software
`package` (a tool the node has, e.g. `iptables`), a `kernel` feature (e.g. `nftables`,
`xfrm` for IPsec) and `hardware` (e.g. `aes-ni`); see netfate.drivers.capabilities for what a
node detects and netfate.resolver for which kinds each flavour needs on the host.

`implementations` gives per-flavour requirements (memory, CPU, disk) over `resources`, which
is what every flavour needs unless it says otherwise; the resolver picks among them.
"""

from __future__ import annotations

import copy
import itertools
import re
from typing import Any, Literal

import jsonschema
import referencing.exceptions
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from netfate import schema_check
from netfate.errors import Conflict, InvalidInput
from netfate.flavours import DEFAULT_FLAVOUR, check_flavour
from netfate.resolver import Implementation, capability_key

LIFECYCLE = (
    "create", "start", "stop", "update", "delete", "pause",
    "export-state", "import-state", "status",
    "check-config",  # run by the orchestrator, not on a node (orchestrator/nf_config_check.py)
)
REQUIRED_SCRIPTS = ("start", "stop")
# A config error's message at most (jsonschema's repeat the value: a 10,000-item list made a
# 129 KB answer); the middle goes, the start and the verdict at the end stay.
MAX_MESSAGE = 400
# A config's check stops at this many errors (each copies its subschema into its message:
# 20000 items each failing an enum of 1000 took 2.6 s) and after this long (s).
MAX_ERRORS = 32
CHECK_SECONDS = 2.0
# The flavours the papers name. Descriptors may name others: a flavour is whatever a compute
# driver registers (netfate.drivers.registry), so a new one needs no change here.
FLAVOURS = ("native", "container", "vm")
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_PORT = re.compile(r"^[a-z][a-z0-9]{0,14}$")
# A per-network-namespace sysctl (what a runtime may set in the NF's own namespace) and a
# plain value.
_SYSCTL_KEY = re.compile(r"^net(\.[a-z0-9_-]{1,40}){2,5}$")
_SYSCTL_VALUE = re.compile(r"^[0-9a-z_ -]{1,32}$")
_CONFIG_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# capabilities(7), Linux 5.9 (CAP_CHECKPOINT_RESTORE, 40) and before: runc refuses any other
# name only when the container is created, so a descriptor naming one is refused at upload.
LINUX_CAPABILITIES = frozenset({
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON",
    "CAP_BPF", "CAP_CHECKPOINT_RESTORE"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Port(_Model):
    name: str
    role: Literal["lan", "wan", "mgmt", "other"] = "other"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _PORT.fullmatch(v) or v == "lo":  # fullmatch: '$' would let "lan\n" in
            raise ValueError(f"port name {v!r} must be 1-15 of a-z0-9, starting with a letter")
        return v


class Capability(_Model):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
    type: Literal["package", "kernel", "hardware"] = "package"

    @property
    def key(self) -> str:
        """The name a node advertises for it ("iptables", "kernel:xfrm", "hardware:aes-ni")."""
        return capability_key(self.name, self.type)


class Dependencies(_Model):
    capability: tuple[Capability, ...] = ()


# Numbers and flags are YAML's own (strict): `memory-mb: true` was read as 1 and '16' as 16
# (pydantic's lax mode), where the API's bodies refuse both (probe of 2026-12-05).
class ResourceRequest(_Model):
    memory_mb: StrictInt = Field(default=32, ge=1, le=65536, alias="memory-mb")
    cpu_percent: StrictInt = Field(default=100, ge=1, le=1000, alias="cpu-percent")
    # Disk for the flavour's image (MB; 0: negligible, e.g. a native bundle's scripts).
    disk_mb: StrictInt = Field(default=0, ge=0, le=1 << 20, alias="disk-mb")


class FlavourRequest(_Model):
    """One implementation's requirements; what it leaves out comes from `resources`."""

    memory_mb: StrictInt | None = Field(default=None, ge=1, le=65536, alias="memory-mb")
    cpu_percent: StrictInt | None = Field(default=None, ge=1, le=1000, alias="cpu-percent")
    disk_mb: StrictInt | None = Field(default=None, ge=0, le=1 << 20, alias="disk-mb")


class StateSpec(_Model):
    exportable: StrictBool = False


# The ports an NF without a `ports` list gets: the NNF paper's service graph joins the NF to
# the LAN and the WAN port (section V).
DEFAULT_PORTS = (Port(name="lan", role="lan"), Port(name="wan", role="wan"))


class Descriptor(_Model):
    name: str
    version: str = Field(default="0", min_length=1, max_length=32)
    description: str = ""
    # Where the NNF paper's driver downloads the scripts (Fig. 3): kept, never fetched.
    uri: str | None = Field(default=None, min_length=1, max_length=2048)
    vnf_type: str = Field(default=DEFAULT_FLAVOUR, alias="vnf-type")
    # Its implementations, in order of preference (the resolver's "first" rule uses it as
    # is; its default rule prefers native at the edge, container in the DC). Absent: the
    # one `vnf-type` names.
    flavours: tuple[str, ...] = Field(default=(), min_length=1)
    multitenancy: StrictBool = True
    # One instance per node serves every user who requires the NF (a DC NAT, an inspector):
    # NNF paper IV.E's single-instance NF, each tenant's traffic marked (the steering's user
    # tag); it counts its active users (NetFATE Table II) and stops with the last of them.
    shared: StrictBool = False
    ports: tuple[Port, ...] = Field(default=DEFAULT_PORTS, min_length=1, max_length=8)
    dependencies: Dependencies = Dependencies()
    resources: ResourceRequest = ResourceRequest()
    implementations: dict[str, FlavourRequest] = Field(default_factory=dict, max_length=16)
    state: StateSpec = StateSpec()
    # Linux capabilities the NF's processes need where a flavour confines them (a container
    # gets these and no others); e.g. CAP_NET_ADMIN for nft, ip and conntrack.
    linux_capabilities: tuple[str, ...] = Field(default=(), alias="linux-capabilities",
                                                max_length=41)
    # Network sysctls the NF needs in its namespace (net.* only), e.g. net.ipv4.ip_forward
    # for an NF that routes de-NATted replies. A container's runtime sets them (OCI
    # linux.sysctl: /proc/sys is read-only inside); a native or VM NF's scripts set them.
    sysctls: dict[str, str] = Field(default_factory=dict, max_length=32)
    # Config keys whose values are absolute paths of files on the node that the NF reads (a
    # key file, say: the secret stays out of the config). A container is given each such
    # file read-only at the same path (bound when it is created), a VM a copy there (mode
    # 0400; netfate.drivers.node_files); native scripts read the node's files anyway.
    node_files: tuple[str, ...] = Field(default=(), alias="node-files", max_length=8)
    config_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"}, alias="config-schema"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
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
            if cap not in LINUX_CAPABILITIES:
                raise ValueError(f"linux capability {cap[:40]!r} is not one of capabilities(7) "
                                 "(upper case, e.g. CAP_NET_ADMIN)")
        return tuple(dict.fromkeys(v))

    @field_validator("node_files")
    @classmethod
    def _node_files(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for key in v:
            if not _CONFIG_KEY.fullmatch(key):
                raise ValueError(f"node-files: {key[:60]!r} is not a config key (a-z0-9_, "
                                 "starting with a letter)")
        return tuple(dict.fromkeys(v))

    @field_validator("sysctls")
    @classmethod
    def _sysctls(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            if not _SYSCTL_KEY.fullmatch(key):
                raise ValueError(f"sysctl {key[:60]!r} is not a network namespace's sysctl "
                                 "(net.*, e.g. net.ipv4.ip_forward)")
            if not _SYSCTL_VALUE.fullmatch(value):
                raise ValueError(f"sysctl {key}: value {value[:40]!r} must be 1-32 of "
                                 "0-9 a-z _ - and space, as a string (quote it: \"1\")")
        return v

    @field_validator("flavours")
    @classmethod
    def _flavours(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for f in v:
            check_flavour(f)
        if len(set(v)) != len(v):
            raise ValueError(f"flavours repeat: {list(v)}")
        return v

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        if not (v.isascii() and v.isprintable()) or any(c.isspace() for c in v) or "/" in v:
            raise ValueError(f"version {v!r} must be printable ASCII, without spaces or '/'")
        return v

    @field_validator("uri")
    @classmethod
    def _uri(cls, v: str | None) -> str | None:
        if v is not None and (not v.isprintable() or any(c.isspace() for c in v)):
            raise ValueError("uri must be printable, without spaces")
        return v

    @model_validator(mode="before")
    @classmethod
    def _derive(cls, data: Any) -> Any:
        # The paper's template has no `flavours`: the NF is the one implementation vnf-type
        # names; one with `flavours` and no vnf-type is of its first flavour. (A field given
        # as null is left for the type checks to refuse.)
        if not isinstance(data, dict):
            return data
        has_type = "vnf-type" in data or "vnf_type" in data
        if "flavours" not in data:
            vnf_type = data.get("vnf-type", data.get("vnf_type", DEFAULT_FLAVOUR))
            data = {**data, "flavours": [vnf_type]}
        elif not has_type and isinstance(data["flavours"], list | tuple) and data["flavours"]:
            data = {**data, "vnf-type": data["flavours"][0]}
        return data

    @model_validator(mode="after")
    def _check(self) -> Descriptor:
        names = [p.name for p in self.ports]
        if len(set(names)) != len(names):
            raise ValueError(f"port names repeat: {names}")
        if self.vnf_type not in self.flavours:
            raise ValueError(f"vnf-type {self.vnf_type!r} is not among flavours {self.flavours}")
        stray = sorted(set(self.implementations) - set(self.flavours))
        if stray:
            raise ValueError(f"implementations {stray} are not among flavours {self.flavours}")
        try:
            jsonschema.Draft202012Validator.check_schema(self.config_schema)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"config-schema is not a valid JSON Schema: {exc.message}") from exc
        schema_check.check(self.config_schema)  # local refs only, no loops, RE2 patterns
        _usable(self.config_schema)
        return self

    @property
    def capabilities(self) -> list[str]:
        """What it depends on, as nodes advertise it (netfate.resolver.capability_key)."""
        return [c.key for c in self.dependencies.capability]

    def implementation_list(self) -> tuple[Implementation, ...]:
        """Each flavour with its requirements, in its order of preference."""
        return implementations_of(self.model_dump(mode="json", by_alias=True))

    def platform_keys(self) -> list[str]:
        """The config's top-level keys the platform sets and callers may not: those whose
        schema is annotated `readOnly: true` (JSON Schema 2020-12 meta-data, "managed by the
        owning authority"), e.g. the firewall's `tenants` of a shared instance. Sorted."""
        props = self.config_schema.get("properties") or {}
        return sorted(k for k, p in props.items() if isinstance(p, dict) and
                      p.get("readOnly") is True)

    def validate_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """Validate config against the schema, with top-level defaults filled in.
        InvalidInput naming the first wrong field (by path, of the first MAX_ERRORS found),
        or when checking takes over CHECK_SECONDS (a 1 MB config against a costly schema);
        Conflict when the package's schema itself cannot be used."""
        if not isinstance(config, dict):
            raise InvalidInput(f"{self.name}: config must be a JSON object")
        filled = dict(config)
        for key, prop in (self.config_schema.get("properties") or {}).items():
            if key not in filled and isinstance(prop, dict) and "default" in prop:
                filled[key] = copy.deepcopy(prop["default"])  # not the schema's own list
        try:
            schema_check.check(self.config_schema)
            validator = schema_check.validator(self.config_schema)
            with schema_check.budget(CHECK_SECONDS):
                errors = sorted(itertools.islice(validator.iter_errors(filled), MAX_ERRORS),
                                key=lambda e: list(e.path))
        except schema_check.TooCostly:
            raise InvalidInput(f"{self.name}: config takes more than {CHECK_SECONDS:g} s to "
                               "check against its package's config-schema (send a smaller "
                               "one)") from None
        except (ValueError, referencing.exceptions.Unresolvable, jsonschema.SchemaError,
                RecursionError) as exc:
            # Defence in depth: a package stored before its schema was checked whole (or a
            # schema whose references loop) is the package's fault, never a 500.
            raise Conflict(f"{self.name}: its package's config-schema cannot be used "
                           f"({type(exc).__name__}: {str(exc)[:300]}); upload a fixed "
                           "package") from None
        if errors:
            e = errors[0]
            where = "/".join(str(p) for p in e.path)[:200] or "(top)"
            msg = e.message if len(e.message) <= MAX_MESSAGE else (
                e.message[:MAX_MESSAGE // 2] + " ... " + e.message[-MAX_MESSAGE // 2:])
            raise InvalidInput(f"{self.name}: config at {where}: {msg}")
        return filled


_DRAFT = "https://json-schema.org/draft/2020-12/schema"

def _usable(schema: dict[str, Any]) -> None:
    """A config-schema a config can pass, as the platform reads it (ValueError naming what
    is not; packages with these were taken, and every config of theirs then failed with
    the caller blamed): draft 2020-12 if it names one, an object at its root, each
    top-level default valid for its own property, no property both required and readOnly
    (callers could never set it)."""
    named = schema.get("$schema")
    if named is not None and named != _DRAFT:
        raise ValueError(f"config-schema: $schema {str(named)[:100]!r} is not {_DRAFT} "
                         "(the draft the platform validates with)")
    kind = schema.get("type", "object")
    if kind != "object":
        raise ValueError(f"config-schema: its root must be type object (a config is a JSON "
                         f"object), not {str(kind)[:50]}")
    props = schema.get("properties") or {}
    required = schema.get("required") or []
    for key, prop in props.items() if isinstance(props, dict) else ():
        if not isinstance(prop, dict):
            continue
        if prop.get("readOnly") is True and key in required:
            raise ValueError(f"config-schema: {key!r} is both required and readOnly "
                             "(the platform sets it; callers could never give it)")
        if "default" in prop:
            try:
                defs = {k: schema[k] for k in ("$defs", "definitions") if k in schema}
                validator = schema_check.validator({**defs, **prop})  # its refs resolve
                err = next(iter(validator.iter_errors(prop["default"])), None)
            except (jsonschema.SchemaError, ValueError, RecursionError):
                err = None  # what the checks above did not refuse is validated as it is
            if err is not None:
                raise ValueError(f"config-schema: the default of {key!r} does not pass its "
                                 f"own schema: {err.message[:200]}")


def implementations_of(stored: dict[str, Any]) -> tuple[Implementation, ...]:
    """Each flavour of a descriptor as stored (model_dump by alias, in the NFVI database) with
    its requirements: `implementations` over `resources` over the defaults. Tolerant of a
    descriptor stored before either existed (native, 32 MB, 100 %)."""
    res = stored.get("resources") or {}
    base = (int(res.get("memory-mb", 32)), int(res.get("cpu-percent", 100)),
            int(res.get("disk-mb", 0)))
    per = stored.get("implementations") or {}
    out = []
    for f in stored.get("flavours") or (stored.get("vnf-type") or DEFAULT_FLAVOUR,):
        over = per.get(f) or {}

        def pick(key: str, default: int, over: dict[str, Any] = over) -> int:
            v = over.get(key)
            return default if v is None else int(v)
        out.append(Implementation(str(f), pick("memory-mb", base[0]),
                                  pick("cpu-percent", base[1]), pick("disk-mb", base[2])))
    return tuple(out)


def parse_descriptor(data: Any, source: str = "descriptor") -> Descriptor:
    """Parse a descriptor, turning every problem into one InvalidInput that names it."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{source}: must be a mapping, got {type(data).__name__}")
    try:
        return Descriptor.model_validate(data)
    except RecursionError:  # a config-schema nested hundreds deep (JSON, not the bundle's YAML)
        raise InvalidInput(f"{source}: nested too deeply") from None
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "(top)"
            problems.append(f"{loc}: {err['msg']}")
        raise InvalidInput(f"{source}: " + "; ".join(problems)) from None
