"""A testbed client's side of access: DHCP, the captive portal login, the stable address."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from netfate.access import dhcp_client, http
from netfate.access.addressing import plan
from netfate.errors import NetfateError
from netfate.testbed.topology import Topology


@dataclass
class PortalLogin:
    user: str
    node: str
    ip: str
    lease_ms: float
    portal_ms: float     # POST to answer: RADIUS and the orchestrator taking the session
    renew_ms: float


def portal_ip(topo: Topology, node: str) -> str:
    cpes = [n.name for n in topo.nodes if n.role == "cpe"]
    return plan(topo.subnet, topo.gateway, cpes)[node].services_ip


def portal_login(topo: Topology, host: str, user: str, password: str) -> PortalLogin:
    """What a person does on a new device: DHCP, the login page, then the address RADIUS
    gave them (the CPE's static DHCP entry for their MAC hands it out on renewal)."""
    h = topo.host(host)
    t0 = time.perf_counter()
    dhcp_client.release(h.netns)
    dhcp_client.lease(h.netns)
    t1 = time.perf_counter()
    r = http.login(h.netns, portal_ip(topo, h.attach), user, password)
    t2 = time.perf_counter()
    try:
        body = r.json()
    except ValueError:
        body = {"error": r.body[:200].decode(errors="replace")}
    if r.status != 200 or not body.get("ok"):
        raise NetfateError(f"login of {user} at {h.attach} refused ({r.status}): "
                           f"{body.get('error')}")
    ip = str(body["ip"])
    lease = dhcp_client.lease(h.netns, requested_ip=ip)
    if lease.ip != ip:
        raise NetfateError(f"{host} was given {lease.ip}, not its stable address {ip}")
    t3 = time.perf_counter()
    return PortalLogin(user, h.attach, ip, round((t1 - t0) * 1000, 1), round((t2 - t1) * 1000, 1),
                 round((t3 - t2) * 1000, 1))


def wait_for(cond: Callable[[], Any], timeout: float, what: str, step: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        with_value = cond()
        if with_value:
            return with_value
        if time.monotonic() > deadline:
            raise NetfateError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


def ensure_user(api: httpx.Client, name: str, password: str, required_nfs: list[str]) -> None:
    """Create the user through the API; one that already exists is kept as it is.

    Raises NetfateError with the API's answer if it refuses otherwise."""
    r = api.post("/users", json={"name": name, "password": password, "required_nfs": required_nfs})
    if r.status_code not in (201, 409):
        raise NetfateError(f"creating {name}: {r.text}")


def nfs_per_node(api: httpx.Client) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for i in api.get("/vnf_instances").json():
        if i["desired_state"] == "present":
            out.setdefault(i["node_name"], []).append(f"{i['id']} ({i['actual_state']})")
    return out


def running_at(api: httpx.Client, user: str) -> dict[str, str]:
    """The user's NF instances that run, by id -> node."""
    return {i["id"]: i["node_name"] for i in api.get("/vnf_instances").json()
            if i["owner"] == user and i["actual_state"] == "running"
            and i["desired_state"] == "present"}
