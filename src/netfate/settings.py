"""One settings object for every NetFATE process: `NETFATE_*` variables and CLI flags.

Each entry point (a `netfate ...` command, the migrations' env.py) builds it once with
`load_settings(...)`, giving the flags it was called with as overrides, and passes the parts
down as parameters. Nothing else reads the environment for configuration, and nothing reads it
at import time.

Groups and their variables (a field ``f`` of a group reads ``<prefix>F``; see `ENV_PREFIX`):

- ``paths``: ``NETFATE_RUN_DIR``
- ``orchestrator``: ``NETFATE_STATE_DIR``, ``NETFATE_DB_URL``, ``NETFATE_PORT``, ...
- ``radius``: ``NETFATE_RADIUS_PORT``, ``NETFATE_RADIUS_POOL``, ...
- ``testbed``: ``NETFATE_TESTBED_IDLE_TIMEOUT``, ``NETFATE_TESTBED_API_PORT``, ...
- ``compute``: ``NETFATE_SCRIPT_TIMEOUT``, ``NETFATE_NF_POOL_SIZE``
- ``client``: ``NETFATE_API`` (its operator token is ``orchestrator.api_token``:
  ``NETFATE_API_TOKEN``, one variable for the server and its clients)

Precedence: flags (overrides) > environment > the defaults written in the models.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from netfate.access.settings import AccessSettings
from netfate.errors import InvalidInput
from netfate.orchestrator.settings import Settings as OrchestratorSettings
from netfate.paths import DEFAULT_RUN_DIR
from netfate.radius.settings import RadiusSettings, SettingsConflict
from netfate.testbed.settings import TestbedSettings

RUN_DIR_MAX = 80  # bytes
RUN_DIR_CHARS = re.compile(r"/[A-Za-z0-9_./-]*")
# A script's timeout goes to subprocess, whose poll() takes at most 2**31-1 ms (24.8 days):
# past that every NF lifecycle step failed with OverflowError. A day is plenty.
SCRIPT_TIMEOUT_MAX = 86400.0  # s


class PathSettings(BaseModel):
    """Where the project keeps its runtime state (one root, so `testbed down` removes it)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # misspelt: an error; inf: no

    run_dir: Path = Field(default=DEFAULT_RUN_DIR, description="Runtime state: OVS, NF instances, "
                          "PIDs, logs (lost at reboot by design); an absolute path of at "
                          f"most {RUN_DIR_MAX} bytes")

    @field_validator("run_dir")
    @classmethod
    def _run_dir_fits(cls, v: Path) -> Path:
        # OVS binds its sockets under it (<run_dir>/ovs/<bridge>.mgmt: a unix socket's path
        # is at most 107 bytes) and `testbed down` removes it whole: a relative path would
        # depend on where a command was started.
        if not v.is_absolute():
            raise ValueError(f"{str(v)!r} is not an absolute path")
        if len(os.fsencode(str(v))) > RUN_DIR_MAX:
            raise ValueError(f"longer than {RUN_DIR_MAX} bytes (sockets live under it)")
        # `down` removes it: '..' made the check of what it holds look at another directory
        # than the one removed; and FreeRADIUS's config names a directory under it, which
        # must hold no spaces, quotes or the like (probe of 2026-12-06)
        if ".." in v.parts or not RUN_DIR_CHARS.fullmatch(str(v)) or len(v.parts) < 2 \
                or str(v).startswith("//"):  # ('//' is a root of its own to POSIX)
            raise ValueError(f"{str(v)!r}: a run dir is an absolute path of letters, digits "
                             "and '_', '.', '-', '/', without '..', and not '/'")
        return v


class ComputeSettings(BaseModel):
    """The native compute driver of an agent."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # misspelt: an error; inf: no

    script_timeout: float = Field(default=30.0, gt=0, le=SCRIPT_TIMEOUT_MAX,
                                  description="Seconds an NF lifecycle script may run before "
                                  f"it is killed (at most {SCRIPT_TIMEOUT_MAX:g})")
    nf_pool_size: int = Field(default=0, ge=0, le=64, description="Pre-made NF namespaces with "
                              "their veths the native driver keeps ready (0: none)")


class ClientSettings(BaseModel):
    """The `netfate nodes|users|nfs|ops|...` client of the orchestrator's API."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # misspelt: an error; inf: no

    api: str = Field(default="http://127.0.0.1:8181", description="The orchestrator's API base URL")

    @field_validator("api")
    @classmethod
    def _base_url(cls, v: str) -> str:
        """http(s)://host[:port][/prefix], nothing after: a query or a fragment would end
        up in front of every request's path (`.../health#/api/v1/nodes` asked for health)."""
        from urllib.parse import urlsplit

        if len(v) > 2048 or not v.isascii() or not v.isprintable() or " " in v:
            raise ValueError("must be a URL of printable ASCII, at most 2048 characters")
        try:
            u = urlsplit(v)
            port = u.port
        except ValueError as exc:
            raise ValueError(f"is not a URL: {exc}") from None
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("must be http://HOST[:PORT] or https://HOST[:PORT]")
        if u.query or u.fragment or "?" in v or "#" in v:
            raise ValueError("must be the API's base URL, without '?' or '#'")
        if u.username is not None or u.password is not None:
            raise ValueError("must not carry a user or password (the token is read from the "
                             "state directory or NETFATE_API_TOKEN)")
        if port == 0:
            raise ValueError("port 0 is no port")
        return v.rstrip("/")


# The variable prefix of each group: its fields read <prefix><FIELD NAME IN CAPITALS>. The
# orchestrator's and a few others' variables predate the groups and have no group word.
ENV_PREFIX: dict[str, str] = {
    "paths": "NETFATE_",
    "orchestrator": "NETFATE_",
    "radius": "NETFATE_RADIUS_",
    "testbed": "NETFATE_TESTBED_",
    "compute": "NETFATE_",
    "client": "NETFATE_",
    "access": "NETFATE_ACCESS_",
}


def _scalar_fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """The fields a variable can set: everything but nested models."""
    out = {}
    for name, f in model.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            continue
        out[name] = f
    return out


def env_names() -> dict[tuple[str, str], str]:
    """(group, field) -> the environment variable that sets it."""
    out: dict[tuple[str, str], str] = {}
    for group, prefix in ENV_PREFIX.items():
        model = NetfateSettings.model_fields[group].annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        for name in _scalar_fields(model):
            out[(group, name)] = f"{prefix}{name.upper()}"
    return out


class _GroupedEnvSource(PydanticBaseSettingsSource):
    """Reads each group's variables (their names by `ENV_PREFIX`) into a nested dict of raw
    strings; the group models parse them. An empty variable counts as unset."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ builds the whole dict

    def __call__(self) -> dict[str, Any]:
        out: dict[str, dict[str, str]] = {}
        for (group, name), var in env_names().items():
            raw = os.environ.get(var)
            if raw is not None and raw != "":
                out.setdefault(group, {})[name] = raw
        return out


class NetfateSettings(BaseSettings):
    """Everything a NetFATE process can be configured with, grouped by who uses it."""

    model_config = SettingsConfigDict(extra="forbid", allow_inf_nan=False)

    paths: PathSettings = Field(default_factory=PathSettings)
    orchestrator: OrchestratorSettings = Field(default_factory=OrchestratorSettings)
    radius: RadiusSettings = Field(default_factory=RadiusSettings)
    testbed: TestbedSettings = Field(default_factory=TestbedSettings)
    compute: ComputeSettings = Field(default_factory=ComputeSettings)
    client: ClientSettings = Field(default_factory=ClientSettings)
    access: AccessSettings = Field(default_factory=AccessSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _GroupedEnvSource(settings_cls)


def load_settings(**overrides: Mapping[str, Any]) -> NetfateSettings:
    """The settings from the process environment with ``overrides`` on top:
    ``group={"field": value}``, a None value meaning "not given" (a flag left out).

    The orchestrator's RADIUS settings (``orchestrator.radius_settings``) are the ``radius``
    group. Raises InvalidInput naming the variable (or the group.field of a flag) and the
    bad value, for every bad value at once; a value that does not go with another setting
    (a `SettingsConflict`) names both. Every bound of what a setting flows into (OpenFlow's
    16-bit idle_timeout, the RADIUS limits) is checked here, not when a service starts.
    """
    given = {g: {k: v for k, v in fields.items() if v is not None}
             for g, fields in overrides.items()}
    misspelt = misspelt_variables(os.environ)
    try:
        s = NetfateSettings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise InvalidInput(_explain(exc, os.environ, given, misspelt)) from None
    if misspelt:
        raise InvalidInput("bad settings: " + "; ".join(misspelt))
    s.orchestrator.radius_settings = s.radius
    return s


# Variables with the prefix that are no setting: what the project hands its own helpers.
NOT_SETTINGS = frozenset({"NETFATE_LEASE_FILE"})  # access/udhcpc.script's output file
CLOSE = 0.8  # difflib ratio above which an unknown variable is taken for a misspelt one


def misspelt_variables(env: Mapping[str, str]) -> list[str]:
    """One line for each NETFATE_* variable in `env` that sets nothing but is close to one
    that does (a typo would otherwise leave the default silently in force), naming both.
    Others with the prefix are left alone: they may belong to something else."""
    known = set(env_names().values())
    out = []
    for var in sorted(env):
        if not var.startswith("NETFATE_") or var in known or var in NOT_SETTINGS:
            continue
        near = difflib.get_close_matches(var, known, n=1, cutoff=CLOSE)
        if near:
            out.append(f"{var} is not a setting (did you mean {near[0]}?)")
    return out


def _shown(group: str, name: str) -> bool:
    """Whether a field's value may be echoed in an error: not a secret (repr=False)."""
    model = NetfateSettings.model_fields[group].annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    field = model.model_fields.get(name)
    return field is None or field.repr is not False


def _source(group: str, name: str, env: Mapping[str, str],
            given: Mapping[str, Mapping[str, Any]]) -> tuple[bool, str]:
    """Where a field's value came from, for an error: (given at all, how it is named): the
    flag, else its variable with the value (unless secret), else the variable, not set."""
    var = env_names().get((group, name))
    if name in given.get(group, {}):
        return True, (f"{group}.{name}={given[group][name]!r} (flag)" if _shown(group, name)
                      else f"{group}.{name} (flag, value hidden)")
    if var is None:
        return False, f"{group}.{name}"
    if env.get(var):
        return True, f"{var}={env[var]!r}" if _shown(group, name) else f"{var} (value hidden)"
    return False, f"{var} (not set)"


def _explain(exc: ValidationError, env: Mapping[str, str],
             given: Mapping[str, Mapping[str, Any]], misspelt: list[str]) -> str:
    """One "bad settings: ..." line for every error: each names the variables (or flags)
    of the fields at fault, the one that failed and those a `SettingsConflict` adds, the
    ones given first; the value of a secret never. Only what no variable or flag sets (a
    nested model's field) is named by its place in the model."""
    names = env_names()
    lines = list(misspelt)
    for e in exc.errors():
        loc = tuple(str(x) for x in e["loc"])
        group = loc[0] if loc else ""
        fields = list(loc[1:2])
        err = (e.get("ctx") or {}).get("error")
        if isinstance(err, SettingsConflict):
            fields += [f for f in err.also if f not in fields]
        if fields and ((group, fields[0]) in names or fields[0] in given.get(group, {})):
            sources = sorted((_source(group, f, env, given) for f in fields),
                             key=lambda s: not s[0])  # stable: the failing one first
            what = ", ".join(name for _, name in sources)
        else:  # no variable sets it (a nested model's field): where it is
            what = ".".join(loc) or "settings"
        lines.append(f"{what}: {e['msg']}")
    return "bad settings: " + "; ".join(lines)
