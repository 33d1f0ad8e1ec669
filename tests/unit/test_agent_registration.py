"""The agent's registration: the orchestrator's refusal is read as one, and the retries
back off exponentially up to a cap."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from netfate.agent.registration import Backoff, RegistrationRefused, parse_reply
from netfate.bus.messages import Command, DesiredState
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
