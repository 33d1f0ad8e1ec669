"""The testbed's knobs: the ``testbed`` group of `netfate.settings.NetfateSettings`
(NETFATE_TESTBED_<FIELD>), and the options of `netfate testbed up` and `lifecycle.up`."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from netfate.radius.settings import IDLE_TIMEOUT_MAX, SettingsConflict

MAX_NODES = 64  # testbed.topology's: metrics ports above the controller's, one per node


class TestbedSettings(BaseModel):
    """Ports and timeouts of the services `testbed up` starts. Defaults only, no environment."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # misspelt: an error; inf: no

    __test__ = False  # not a pytest test class, despite the name

    topology: Path | None = Field(
        default=None, description="Topology YAML; none: the packaged PoC")
    api_port: int = Field(
        default=8181, ge=1, le=65535, description="The orchestrator's API port (loopback)")
    nats_port: int = Field(
        default=4322, ge=1, le=65535, validate_default=True,
        description="The embedded nats-server's port")
    of_port: int = Field(
        default=6693, ge=1, le=65535, validate_default=True,
        description="The SDN controller's OpenFlow port")
    # The orchestrator's user_idle_timeout (passed on as its flag): an OpenFlow idle_timeout
    # of 16 bits, the bound of the controller's Client.idle_timeout (controller/model.py).
    # Past it every user was left out of their switch's state: logged in, no connectivity.
    idle_timeout: int = Field(
        default=30, ge=0, le=IDLE_TIMEOUT_MAX, description="Seconds without packets before a "
        f"user is released (the controller's idle flows; 0: never; at most {IDLE_TIMEOUT_MAX})")
    reauth_lifetime: float = Field(
        default=3600.0, ge=0, description="Seconds a session allows fast re-authentication "
        "at another CPE (0: off)")
    command_timeout: float = Field(
        default=10.0, gt=0, description="Seconds an agent has to answer the orchestrator")
    reaction_policy: str = Field(
        default="", description="The orchestrator's closed loop: reaction policy for NF "
        "notifications (e.g. block-flood-sources; empty: off)")
    metrics_port: int = Field(
        default=9470, ge=0, le=65000, validate_default=True,
        description="Prometheus /metrics (loopback): the SDN "
        "controller's port; the agents' follow it, one per node in topology order (0: "
        "off; the orchestrator serves /metrics on its API port either way)")

    # Each of the testbed's loopback ports once (re-probe of 2026-12-06: --of-port on the
    # bus's port failed 38 s later, and agents' metrics on the API port reported success).
    @field_validator("nats_port", "of_port")
    @classmethod
    def _distinct(cls, v: int, info: ValidationInfo) -> int:
        for other in ("api_port", "nats_port"):
            if other != info.field_name and v == info.data.get(other):
                raise SettingsConflict(f"{info.field_name} {v} is the {other} too: give each "
                                       "service its own port", other)
        return v

    @field_validator("metrics_port")
    @classmethod
    def _metrics_apart(cls, v: int, info: ValidationInfo) -> int:
        if v:
            hi = v + MAX_NODES  # the controller's, then one per node
            for other in ("api_port", "nats_port", "of_port"):
                p = info.data.get(other)
                if isinstance(p, int) and v <= p <= hi:
                    raise SettingsConflict(
                        f"metrics ports {v}-{hi} (the controller's, then one per node) hold "
                        f"{other} {p}: move one", other)
        return v

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    @property
    def controller_target(self) -> str:
        return f"tcp:127.0.0.1:{self.of_port}"
