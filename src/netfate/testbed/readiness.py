"""Waits for a testbed's services to be ready: nodes registered, access services up, every
switch programmed. Each raises DriverError naming what is missing, with the logs' tails."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import httpx

from netfate import api_auth, paths
from netfate.drivers import netns
from netfate.errors import DriverError
from netfate.testbed import processes


def wait_switches(nodes: list[str], api: str, timeout: float = 30.0) -> None:
    """Until the controller has installed every switch's desired state (the switches
    connect to it with a back-off, and stay closed until then)."""
    deadline = time.monotonic() + timeout
    missing = set(nodes)
    seen: dict[str, Any] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            r = httpx.get(f"{api}/api/v1/switches", timeout=2,
                          headers=api_auth.auth_headers())
            seen = {s["node"]: s for s in r.json()}
            ready = {n for n, s in seen.items() if s["in_sync"]}
            missing = set(nodes) - ready
            if not missing:
                return
        time.sleep(0.1)
    # What the orchestrator knows of them and what the controller last did: a CI run's
    # logs are gone once it fails, so the error carries them.
    known = {n: {k: seen[n].get(k) for k in ("generation", "synced_generation", "errors")}
             for n in sorted(missing) if n in seen}
    raise DriverError(f"the SDN controller did not program {sorted(missing)} within "
                      f"{timeout:g}s (the orchestrator's view: {known or 'no switch state'}); "
                      f"see {processes.pid_dir()}/controller.log, which ends:\n"
                      f"{processes.supervised('controller').tail(12)}"
                      + processes.crash_reports())


def wait_access(nodes: list[str], timeout: float = 20.0) -> None:
    """Until each CPE's access services answer (the portal, from the services namespace)."""
    from netfate.access.addressing import services_netns

    deadline = time.monotonic() + timeout
    missing = list(nodes)
    while missing and time.monotonic() < deadline:
        missing = [n for n in missing if not (
            netns.exists(services_netns(n))
            and (paths.run_dir() / "access" / n / "dnsmasq.pid").exists())]
        if missing:
            time.sleep(0.05)
    if missing:
        raise DriverError(f"the access services of {missing} did not come up within "
                          f"{timeout:g}s; see {processes.pid_dir()}"
                          + processes.crash_reports())


def wait_registered(nodes: list[str], api: str, timeout: float = 30.0) -> None:
    """Until every node in `nodes` is registered and online in the orchestrator at `api`."""
    deadline = time.monotonic() + timeout
    missing = set(nodes)
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            r = httpx.get(f"{api}/api/v1/nodes", timeout=2,
                          headers=api_auth.auth_headers())
            missing = set(nodes) - {n["name"] for n in r.json() if n.get("online")}
            if not missing:
                return
        time.sleep(0.1)
    raise DriverError(f"nodes {sorted(missing)} did not register within {timeout:g}s; "
                      f"see the agents' logs in {processes.pid_dir()}"
                      + processes.crash_reports())
