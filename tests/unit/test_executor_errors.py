"""An operation on one tenant's NF records its own NF's error from the agent's reply, never
another tenant's that failed in the same apply on that node (found by a probe, 12-03: one
user's login failed with another user's key-file path in its record)."""

from __future__ import annotations

import pytest

from netfate.bus.messages import NFActual, Reply
from netfate.errors import NetfateError
from netfate.orchestrator.executor import _check
from netfate.orchestrator.planner import Push

BOB, ALICE = "cpe1-bob-vpn", "cpe1-alice-vpn"
BOTH = {BOB: f"create {BOB}: no key", ALICE: f"update {ALICE}: /run/x/alice/psk is gone"}


def reply(errors: dict[str, str], running: tuple[str, ...] = ()) -> Reply:
    return Reply(ok=not errors, error="; ".join(errors.values()) or None, errors=errors,
                 nfs=[NFActual(instance_id=i, nf_name="vpn", owner="bob", state="running",
                               bundle_sha256="0" * 64) for i in running])


def test_a_failed_create_reports_only_its_own_error() -> None:
    with pytest.raises(NetfateError) as exc:
        _check(Push(node="cpe1", expect="running", iid=BOB), reply(BOTH))
    assert str(exc.value) == BOTH[BOB] and "alice" not in str(exc.value)


def test_another_tenants_failure_does_not_fail_this_operation() -> None:
    only_alice = {ALICE: BOTH[ALICE]}
    _check(Push(node="cpe1", expect="running", iid=BOB), reply(only_alice, (BOB,)))
    _check(Push(node="cpe1", expect="ok", iid=BOB), reply(only_alice, (BOB,)))
    _check(Push(node="cpe1", expect="gone", iid=BOB), reply(only_alice))
    with pytest.raises(NetfateError, match=f"{BOB} did not come up on cpe1$"):
        _check(Push(node="cpe1", expect="running", iid=BOB), reply(only_alice))


def test_an_agent_of_before_sends_the_joined_error() -> None:
    old = Reply(ok=False, error="create x: boom")
    with pytest.raises(NetfateError, match="create x: boom"):
        _check(Push(node="cpe1", expect="running", iid=BOB), old)
    with pytest.raises(NetfateError, match="create x: boom"):
        _check(Push(node="cpe1", expect="ok", iid=BOB), old)
