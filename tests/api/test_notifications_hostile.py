"""Notifications as NFs may write them (found by the breaker pass): without a source, with
an empty owner, a NaN timestamp: stored and listed (finite ts), never lost to an
exception in the orchestrator's bus callback."""

from __future__ import annotations

import math

import httpx

from netfate.bus import subjects
from tests.api.conftest import MakeAgent
from tests.api.harness import wait_until
from tests.api.test_api_faults import _notes


def test_odd_notifications_are_stored_with_a_finite_timestamp(
        client: httpx.Client, make_agent: MakeAgent) -> None:
    agent = make_agent("cpe1")
    # JSON has no NaN, but the bus message parser takes it (and an agent's float("nan"))
    raw = ('{"node": "cpe1", "nf_id": "", "owner": "", "type": "odd", "source": null, '
           '"detail": {}, "ts": NaN}')
    agent.loop.run(agent._publish(subjects.notify("cpe1"), raw))
    (n,) = wait_until(lambda: _notes(client, type="odd"), 5, "the odd notification")
    assert n["source"] == "unknown" and n["owner"] is None and n["nf_instance_id"] is None
    assert math.isfinite(n["ts"]) and n["ts"] > 0
