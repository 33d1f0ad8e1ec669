"""Schemathesis over the northbound API: every operation of the OpenAPI spec, valid and
invalid inputs, and never a 5xx.

The spec is the app's own (create_app(...).openapi(), built without starting anything, so each
operation is a test of its own); test_live_spec_is_the_one_tested checks that the live server
serves the same document at /openapi.json. The server runs with two fake agents' nodes, and
each operation starts with user1 and their firewall in place (the names the spec's examples
use), so that generated requests reach rows and the coordinator, not only 404s. /events
streams forever and is left out. Examples are derandomized: the same cases on every run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode

from netfate.orchestrator.app import create_app
from netfate.orchestrator.settings import Settings
from tests.api.harness import (
    AUTH,
    FakeAgent,
    LiveOrchestrator,
    LoopThread,
    running,
    wait_op,
    wait_until,
)

FW = "cpe1-user1-firewall"

# Bundles are sent as raw bytes, like application/octet-stream.
schemathesis.serializer.alias("application/gzip", "application/octet-stream")

SPEC: dict[str, Any] = create_app(Settings(state_dir=Path("/nonexistent"))).openapi()
schema = schemathesis.openapi.from_dict(SPEC).exclude(path="/api/v1/events")
# Valid and invalid data (wrong types, missing or extra fields, out-of-range values).
schema.config.generation.update(modes=list(GenerationMode))

MAX_EXAMPLES = 50


@dataclass
class Fuzzed:
    live: LiveOrchestrator
    cpe1: FakeAgent


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    """One orchestrator for the whole run, with nodes cpe1 and cpe2 (fake agents)."""
    loop = LoopThread()
    agents: list[FakeAgent] = []
    try:
        with running(tmp_path_factory.mktemp("schemathesis"), command_timeout=1.0) as live:
            for name in ("cpe1", "cpe2"):
                agents.append(FakeAgent(loop, live.nats_url, name))
                agents[-1].start()
            yield Fuzzed(live, agents[0])
            for a in agents:
                a.kill()
    finally:
        for a in agents:
            a.kill()
        loop.close()


@pytest.fixture
def seeded(fuzzed: Fuzzed) -> LiveOrchestrator:
    """Before each operation's examples: user1 exists with their firewall running on cpe1
    (the spec's examples name them), and a notification, so that generated requests reach
    existing rows and the coordinator, not only 404s."""
    with httpx.Client(base_url=fuzzed.live.url, timeout=15, headers=AUTH) as c:
        # A fuzzed PATCH /nodes may have marked a node down: up again, and a moment for the
        # plan that spawns to start its operations (waited for below).
        downs = [n["name"] for n in c.get("/api/v1/nodes").json() if n.get("admin_down")]
        for node in downs:
            c.patch(f"/api/v1/nodes/{node}", json={"admin_down": False}).raise_for_status()
        if downs:
            time.sleep(0.5)
        for op in c.get("/api/v1/vnf_lcm_op_occs", params={"state": "PROCESSING"}).json():
            wait_op(c, op["id"], timeout=30)
        if c.get("/api/v1/users/user1").status_code == 404:
            c.post("/api/v1/users", json={"name": "user1", "password": "secret1",
                                          "required_nfs": ["firewall"]}).raise_for_status()
        inst = c.get(f"/api/v1/vnf_instances/{FW}")
        if inst.status_code == 200 and inst.json()["desired_state"] != "present":
            wait_until(lambda: c.get(f"/api/v1/vnf_instances/{FW}").status_code == 404, 10,
                       f"{FW} to be removed")
        if c.get(f"/api/v1/vnf_instances/{FW}").status_code == 404:
            r = c.post("/api/v1/vnf_instances",
                       json={"nf": "firewall", "owner": "user1", "node": "cpe1"})
            assert r.status_code == 202, r.text
            assert wait_op(c, r.json()["vnf_lcm_op_occs"][0])["operation_state"] == "COMPLETED"
        c.delete(f"/api/v1/vnf_instances/{FW}/mute")
        for sub in c.get("/api/v1/subscriptions").json():  # see _loopback_only
            c.delete(f"/api/v1/subscriptions/{sub['id']}")
        if not c.get("/api/v1/notifications").json():
            fuzzed.cpe1.notify("alert", FW, what="port scan")
            wait_until(lambda: c.get("/api/v1/notifications").json(), 5, "a notification")
    return fuzzed.live


def test_live_spec_is_the_one_tested(fuzzed: Fuzzed) -> None:
    r = httpx.get(f"{fuzzed.live.url}/openapi.json", timeout=15)
    assert r.status_code == 200
    assert r.json() == SPEC


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_error(case: schemathesis.Case, seeded: LiveOrchestrator) -> None:
    _loopback_only(case)
    r = case.call_and_validate(base_url=seeded.url, checks=[not_a_server_error], timeout=15,
                               headers=AUTH)
    if case.operation.path == "/api/v1/subscriptions" and r.status_code == 201:
        httpx.delete(f"{seeded.url}/api/v1/subscriptions/{r.json()['id']}", timeout=15)


def _loopback_only(case: schemathesis.Case) -> None:
    """The orchestrator POSTs lifecycle notifications to subscriptions' callback URIs: a
    generated URI with a usable host is pointed at a closed loopback port instead, so that no
    request ever leaves this machine. (Unusable ones are kept: the API must refuse them.)"""
    body = case.body
    if not (isinstance(body, dict) and isinstance(body.get("callbackUri"), str)):
        return
    try:
        parts = urlsplit(body["callbackUri"])
        parts.port  # noqa: B018 - raises ValueError when invalid
    except ValueError:
        return
    if parts.hostname or parts.netloc:
        body["callbackUri"] = urlunsplit(parts._replace(netloc="127.0.0.1:9"))
