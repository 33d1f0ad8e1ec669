"""Request and response bodies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

NAME = r"^[a-z0-9][a-z0-9_.-]{0,31}$"
MAC = r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$"
IPV4 = r"^(\d{1,3}\.){3}\d{1,3}$"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserCreate(Body):
    name: str = Field(pattern=NAME)
    password: str = Field(min_length=4, max_length=256)
    required_nfs: list[str] = Field(default=[], max_length=16)
    nf_config: dict[str, dict[str, Any]] = {}


class UserPatch(Body):
    password: str | None = Field(default=None, min_length=4, max_length=256)
    required_nfs: list[str] | None = Field(default=None, max_length=16)
    nf_config: dict[str, dict[str, Any]] | None = None


class Associate(Body):
    node: str = Field(pattern=NAME)
    mac: str | None = Field(default=None, pattern=MAC)
    ip: str | None = Field(default=None, pattern=IPV4)


class Instantiate(Body):
    nf: str = Field(pattern=NAME)
    owner: str = Field(pattern=NAME)
    node: str = Field(pattern=NAME)
    config: dict[str, Any] = {}


class MigrateBody(Body):
    node: str = Field(pattern=NAME)


class UpdateBody(Body):
    config: dict[str, Any]


class SubscriptionCreate(Body):
    callbackUri: str = Field(min_length=1, max_length=2048)
    filter: dict[str, Any] = {}


class Accepted(BaseModel):
    """202: what was planned, and the operation occurrences to follow."""

    intents: list[dict[str, Any]] = []
    vnf_lcm_op_occs: list[str] = []
    reasons: list[str] = []
