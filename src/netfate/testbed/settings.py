"""The testbed's knobs: the ``testbed`` group of `netfate.settings.NetfateSettings`
(NETFATE_TESTBED_<FIELD>), and the options of `netfate testbed up` and `lifecycle.up`."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from netfate.radius.settings import IDLE_TIMEOUT_MAX


class TestbedSettings(BaseModel):
    """Ports and timeouts of the services `testbed up` starts. Defaults only, no environment."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # misspelt: an error; inf: no

    __test__ = False  # not a pytest test class, despite the name

    topology: Path | None = Field(
        default=None, description="Topology YAML; none: the packaged PoC")
    api_port: int = Field(
        default=8181, ge=1, le=65535, description="The orchestrator's API port (loopback)")
    nats_port: int = Field(
        default=4322, ge=1, le=65535, description="The embedded nats-server's port")
    of_port: int = Field(
        default=6693, ge=1, le=65535, description="The SDN controller's OpenFlow port")
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
        default=9470, ge=0, le=65000, description="Prometheus /metrics (loopback): the SDN "
        "controller's port; the agents' follow it, one per node in topology order (0: "
        "off; the orchestrator serves /metrics on its API port either way)")

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    @property
    def controller_target(self) -> str:
        return f"tcp:127.0.0.1:{self.of_port}"
