"""Request and response bodies."""

from __future__ import annotations

from typing import Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

NAME = r"^[a-z0-9][a-z0-9_.-]{0,31}$"
MAC = r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$"
IPV4 = r"^(\d{1,3}\.){3}\d{1,3}$"


# Path parameters, with examples for the docs page and for API fuzzers (schemathesis) to
# reach existing rows.
USER = Path(description="a user's name", examples=["user1"])
NODE = Path(description="a node's name", examples=["cpe1"])
IID = Path(description="an NF instance's id (node-owner-nf)", examples=["cpe1-user1-firewall"])


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserCreate(Body):
    name: str = Field(pattern=NAME, examples=["user2"])
    password: str = Field(min_length=4, max_length=256, examples=["secret2"])
    required_nfs: list[str] = Field(default=[], max_length=16, examples=[["firewall"]])
    nf_config: dict[str, dict[str, Any]] = {}


class UserPatch(Body):
    password: str | None = Field(default=None, min_length=4, max_length=256)
    required_nfs: list[str] | None = Field(default=None, max_length=16)
    nf_config: dict[str, dict[str, Any]] | None = None


class Associate(Body):
    node: str = Field(pattern=NAME, examples=["cpe1"])
    mac: str | None = Field(default=None, pattern=MAC, examples=["02:00:00:00:00:01"])
    ip: str | None = Field(default=None, pattern=IPV4, examples=["10.0.0.2"])


class Instantiate(Body):
    nf: str = Field(pattern=NAME, examples=["rate-limiter"])
    owner: str = Field(pattern=NAME, examples=["user1"])
    node: str = Field(pattern=NAME, examples=["cpe1"])
    config: dict[str, Any] = Field(default={}, examples=[{}])


class MigrateBody(Body):
    node: str = Field(pattern=NAME, examples=["cpe2"])


class UpdateBody(Body):
    config: dict[str, Any] = Field(examples=[{"default_in": "allow"}])


class SubscriptionCreate(Body):
    callbackUri: str = Field(min_length=1, max_length=2048)
    filter: dict[str, Any] = {}


class Accepted(BaseModel):
    """202: what was planned, and the operation occurrences to follow."""

    intents: list[dict[str, Any]] = []
    vnf_lcm_op_occs: list[str] = []
    reasons: list[str] = []
