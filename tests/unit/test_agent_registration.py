"""The agent's registration: the orchestrator's refusal is read as one, and the retries
back off exponentially up to a cap."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import ValidationError

from netfate.agent.registration import Backoff, RegistrationRefused, parse_reply
from netfate.agent.service import Agent
from netfate.bus.messages import Command, DesiredState
from netfate.counters import REGISTRATIONS_REFUSED, REGISTRY
from netfate.orchestrator.agents import refusal


def test_an_accepted_registration_carries_the_desired_state() -> None:
    cmd = Command(op="apply", desired=DesiredState(generation=3))
    got = parse_reply(cmd.model_dump_json().encode())
    assert got.op == "apply" and got.desired is not None and got.desired.generation == 3


def test_a_refusal_is_raised_with_its_reason() -> None:
    data = refusal("node cpe9 is unknown").model_dump_json().encode()
    with pytest.raises(RegistrationRefused) as err:
        parse_reply(data)
    assert err.value.reason == "node cpe9 is unknown"
    assert "refused" in str(err.value)


def test_anything_else_is_not_taken_for_a_registration() -> None:
    with pytest.raises(ValidationError):
        parse_reply(b'{"ok": true}')
    with pytest.raises(ValidationError):
        parse_reply(b"not json")


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    b = Backoff(initial=0.5, factor=2, cap=4, jitter=0)
    assert [b.next() for _ in range(6)] == [0.5, 1, 2, 4, 4, 4]
    assert b.attempts == 6
    b.reset()
    assert b.next() == 0.5


def test_backoff_jitter_only_stretches() -> None:
    b = Backoff(initial=1, factor=2, cap=8, jitter=0.25, rand=lambda: 1.0)
    assert [b.next() for _ in range(5)] == [1.25, 2.5, 5.0, 10.0, 10.0]
    b = Backoff(initial=1, cap=8, jitter=0.25, rand=lambda: 0.0)
    assert b.next() == 1


def test_backoff_survives_many_attempts() -> None:
    b = Backoff(initial=1, cap=30, jitter=0)
    for _ in range(2000):
        d = b.next()
    assert d == 30


def test_backoff_refuses_nonsense() -> None:
    for make in (lambda: Backoff(initial=0), lambda: Backoff(factor=0.5),
                 lambda: Backoff(cap=0.1), lambda: Backoff(jitter=1.0)):
        with pytest.raises(ValueError):
            make()


class _Flaky(Agent):
    """An agent whose attempts give the scripted outcomes (None: accepted)."""

    def __init__(self, outcomes: list[Exception | None]) -> None:  # no node, no bus
        self.name = "cpe1"
        self._stop = asyncio.Event()
        self.outcomes = outcomes
        self.attempts = 0

    async def register(self) -> None:
        self.attempts += 1
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome


def test_the_agent_retries_a_refusal_with_backoff_and_says_why(
        caplog: pytest.LogCaptureFixture) -> None:
    agent = _Flaky([RegistrationRefused("node cpe1 is unknown"), TimeoutError("no answer"),
                    None])
    backoff = Backoff(initial=0.001, cap=0.004, jitter=0)
    before = REGISTRY.value(REGISTRATIONS_REFUSED, side="agent")
    with caplog.at_level(logging.WARNING, logger="netfate.agent"):
        asyncio.run(agent.register_until_accepted(backoff))
    assert agent.attempts == 3 and backoff.attempts == 2
    assert REGISTRY.value(REGISTRATIONS_REFUSED, side="agent") == before + 1
    refused, failed = (r.getMessage() for r in caplog.records)
    assert "refused the registration (node cpe1 is unknown); retrying in 0.0s" in refused
    assert "registration failed (TimeoutError: no answer)" in failed


def test_a_stopping_agent_stops_retrying() -> None:
    agent = _Flaky([RegistrationRefused("busy")] * 100)

    async def main() -> None:
        task = asyncio.create_task(agent.register_until_accepted(Backoff(initial=5, cap=5)))
        await asyncio.sleep(0.05)
        agent.stop()
        await asyncio.wait_for(task, 1)

    asyncio.run(main())
    assert agent.attempts == 1
