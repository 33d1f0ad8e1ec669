"""The scenarios' side of the orchestrator: its REST API, as an operator uses it.

Users with their NFs, a device associating at its CPE (its chain placed and steered by the
orchestrator), and what the orchestrator recorded: NF notifications and lifecycle operations,
with their own timestamps (so a figure is the orchestrator's, not this poller's).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from typing import Any

import httpx

from netfate.api_auth import BearerAuth
from netfate.api_pages import get_all
from netfate.errors import DriverError
from netfate.proc import netns_argv
from netfate.testbed.context import Testbed


@dataclass(frozen=True)
class Op:
    """A lifecycle operation (vnf_lcm_op_occs): start and last state change, epoch seconds."""
    id: str
    operation: str
    state: str
    instance_id: str
    start: float
    entered: float
    reason: str


class Api:
    """The orchestrator's /api/v1 with the operator token. DriverError on a refusal."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.http = httpx.Client(base_url=base_url + "/api/v1", timeout=timeout,
                                 auth=BearerAuth())

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        if r.status_code >= 400:
            raise DriverError(f"orchestrator: {method} {path}: {r.status_code} {r.text[:300]}")
        return r.json() if r.content else None

    def get_all(self, path: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Every page of a paged list (netfate.api_pages)."""
        try:
            return get_all(self.http, path, params)
        except (httpx.HTTPStatusError, ValueError) as exc:
            raise DriverError(f"orchestrator: GET {path}: {exc}") from None

    def add_user(self, name: str, nfs: list[str], nf_config: dict[str, Any]) -> None:
        self.call("POST", "/users", json={"name": name, "password": f"pw-{name}",
                                          "required_nfs": nfs, "nf_config": nf_config})

    def associate(self, tb: Testbed, user: str, host: str) -> list[str]:
        """`host` (a client with its topology address) logs in as `user` at its CPE: the
        orchestrator places and steers its NFs. Returns the operations' ids."""
        node, mac, _, _ = tb.access(host)
        h = tb.host(host)
        # one frame on its LAN first, so its CPE's switch knows the device's port
        subprocess.run(netns_argv(h.netns, ["ping", "-c", "1", "-W", "0.3",  # noqa: S603
                                            tb.topology.internet_address]),
                       capture_output=True, check=False, timeout=5)
        out = self.call("POST", f"/users/{user}/associate",
                        json={"node": node, "mac": mac, "ip": tb.topology.host_address(h)})
        return [o for o in out["vnf_lcm_op_occs"] if o]

    def ops(self) -> list[Op]:
        return [Op(o["id"], o["operation"], o["operation_state"], o["vnf_instance_id"],
                   float(o["start_time"]), float(o["state_entered_time"]),
                   str((o.get("params") or {}).get("reason", "")))
                for o in self.get_all("/vnf_lcm_op_occs")]

    def wait_ops(self, ids: list[str], timeout: float = 60.0) -> list[Op]:
        """Until the operations `ids` are done; DriverError if one failed or they are not
        done within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            ops = [o for o in self.ops() if o.id in ids]
            if len(ops) == len(ids) and all(o.state not in ("STARTING", "PROCESSING",
                                                            "ROLLING_BACK") for o in ops):
                bad = [o for o in ops if o.state != "COMPLETED"]
                if bad:
                    raise DriverError(f"operations failed: {bad}")
                return ops
            if time.monotonic() > deadline:
                raise DriverError(f"operations not done within {timeout:g} s: {ops}")
            time.sleep(0.2)

    def wait_steered(self, node: str, users: list[str], timeout: float = 30.0) -> None:
        """Until the switch of `node` has each user's steering rule installed."""
        deadline = time.monotonic() + timeout
        while True:
            rules = self.call("GET", "/steering_rules", params={"node": node})
            done = {r.get("user_name") for r in rules if r.get("installed")}
            if set(users) <= done:
                return
            if time.monotonic() > deadline:
                raise DriverError(f"steering of {sorted(set(users) - done)} on {node} not "
                                  f"installed within {timeout:g} s")
            time.sleep(0.2)

    def notifications(self, type_: str) -> list[dict[str, Any]]:
        return self.get_all("/notifications", params={"type": type_})
