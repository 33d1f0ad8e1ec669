"""Schemathesis over the northbound API: every operation of the OpenAPI spec, valid and
invalid inputs, and never a 5xx.

The spec is the app's own (create_app(...).openapi(), built without starting anything, so each
operation is a test of its own); test_live_spec_is_the_one_tested checks that the live server
serves the same document at /openapi.json. The server runs with a fake agent's node, a user and
an instance, so that some generated requests reach the coordinator. /events streams forever
and is left out. Examples are derandomized: the same cases on every run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from netfate.orchestrator.app import create_app
from netfate.orchestrator.settings import Settings
from tests.api.harness import FakeAgent, LiveOrchestrator, LoopThread, wait_op

SPEC: dict[str, Any] = create_app(Settings(state_dir=Path("/nonexistent"))).openapi()
schema = schemathesis.openapi.from_dict(SPEC).exclude(path="/api/v1/events")

MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveOrchestrator]:
    """One orchestrator for the whole run, with a node (fake agent), a user and an NF."""
    live = LiveOrchestrator(tmp_path_factory.mktemp("schemathesis"), command_timeout=1.0)
    loop: LoopThread | None = None
    agent: FakeAgent | None = None
    try:
        live.start()
        loop = LoopThread()
        agent = FakeAgent(loop, live.nats_url, "cpe1")
        agent.start()
        with httpx.Client(base_url=live.url, timeout=15) as c:
            c.post("/api/v1/users", json={"name": "user1", "password": "secret1",
                                          "required_nfs": ["firewall"]}).raise_for_status()
            r = c.post("/api/v1/vnf_instances",
                       json={"nf": "firewall", "owner": "user1", "node": "cpe1"})
            r.raise_for_status()
            wait_op(c, r.json()["vnf_lcm_op_occs"][0])
            agent.notify("alert", "cpe1-user1-firewall", what="port scan")
        yield live
    finally:
        if agent is not None:
            agent.kill()
        if loop is not None:
            loop.close()
        live.stop()


def test_live_spec_is_the_one_tested(fuzzed: LiveOrchestrator) -> None:
    r = httpx.get(f"{fuzzed.url}/openapi.json", timeout=15)
    assert r.status_code == 200
    assert r.json() == SPEC


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_error(case: schemathesis.Case, fuzzed: LiveOrchestrator) -> None:
    case.call_and_validate(base_url=fuzzed.url, checks=[not_a_server_error], timeout=15)
