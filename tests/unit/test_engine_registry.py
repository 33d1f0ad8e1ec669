"""Policy registry: built-ins, registration, entry-point discovery, and the documented example."""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib.metadata import EntryPoint, EntryPoints
from pathlib import Path
from typing import Any

import pytest

from netfate.engine import (
    POLICIES,
    NetfatePolicy,
    Place,
    Plan,
    Policy,
    Reconcile,
    Snapshot,
    Steer,
    UserAssociated,
    UserIdle,
    available,
    get_policy,
    plan,
    register,
)
from netfate.engine import policy as registry
from netfate.engine.events import Event

from .test_engine_support import dc, node, user, world

DOCS = Path(__file__).resolve().parents[2] / "docs" / "policies.md"


class Noop:
    name = "noop"

    def plan(self, snap: Snapshot, event: Event) -> Plan:
        return Plan.empty(f"noop: {event.kind}")


def noop_factory() -> Noop:
    return Noop()


NOOP = Noop()


@pytest.fixture
def clean_registry() -> Iterator[dict[str, Policy]]:
    """Registrations made by a test are undone after it."""
    saved = dict(POLICIES)
    yield POLICIES
    POLICIES.clear()
    POLICIES.update(saved)


def _fake_entry_points(monkeypatch: pytest.MonkeyPatch, **targets: str) -> None:
    eps = EntryPoints(
        EntryPoint(name=n, value=v, group=registry.ENTRY_POINT_GROUP) for n, v in targets.items()
    )
    monkeypatch.setattr(registry, "_entry_points", lambda: eps)


def test_default_policy_is_netfate() -> None:
    assert isinstance(get_policy("netfate"), NetfatePolicy)
    assert "netfate" in available()


def test_unknown_policy_lists_known_ones() -> None:
    with pytest.raises(KeyError, match=r"no policy named 'nope' \(known: .*netfate"):
        get_policy("nope")
    with pytest.raises(KeyError):
        plan(world([]), Reconcile(), "nope")


def test_custom_policy_is_found_by_name_after_registering(clean_registry: object) -> None:
    assert register(NOOP) is NOOP
    assert get_policy("noop") is NOOP
    assert plan(world([]), Reconcile(), "noop").reasons == ("noop: reconcile",)
    assert plan(world([]), Reconcile(), NOOP).reasons == ("noop: reconcile",)
    assert "noop" in available()


def test_registering_a_taken_name_needs_replace(clean_registry: object) -> None:
    register(NOOP)
    register(NOOP)  # the same object again is fine
    other = Noop()
    with pytest.raises(ValueError, match="already registered"):
        register(other)
    register(other, replace=True)
    assert get_policy("noop") is other


def test_register_rejects_non_policies(clean_registry: object) -> None:
    with pytest.raises(TypeError, match="not a policy"):
        register(object())  # type: ignore[arg-type]


@pytest.mark.parametrize("target", ["NOOP", "Noop", "noop_factory"])
def test_entry_point_is_loaded_on_first_use(
    target: str, monkeypatch: pytest.MonkeyPatch, clean_registry: object
) -> None:
    _fake_entry_points(monkeypatch, noop=f"{__name__}:{target}")
    assert "noop" in available() and "noop" not in POLICIES
    p = get_policy("noop")
    assert isinstance(p, Noop) and POLICIES["noop"] is p


def test_broken_entry_point_is_reported_not_fatal(
    monkeypatch: pytest.MonkeyPatch, clean_registry: object
) -> None:
    _fake_entry_points(monkeypatch, noop="no_such_module_xyz:Policy", other=f"{__name__}:Noop")
    with pytest.raises(KeyError, match="entry point noop = no_such_module_xyz:Policy failed"):
        get_policy("noop")
    with pytest.raises(KeyError, match="gives a policy named 'noop'"):
        get_policy("other")
    assert isinstance(get_policy("netfate"), NetfatePolicy)


def test_documented_example_policy_works(clean_registry: object) -> None:
    code = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert code is not None
    ns: dict[str, Any] = {}
    exec(compile(code.group(1), str(DOCS), "exec"), ns)  # our own docs
    always_dc = register(ns["AlwaysDc"]())
    assert get_policy("always-dc") is always_dc

    snap = world([node("cpe1"), dc("dc1", cpu=0.5), dc("dc2")], [user()])
    p = plan(snap, UserAssociated(user="alice", node="cpe1"), "always-dc")
    assert [(x.nf, x.node) for x in p.of(Place)] == [("firewall", "dc2")]
    assert p.of(Steer)[0].chain == ("dc2-alice-firewall",)
    assert plan(snap, UserIdle(user="alice"), "always-dc").reasons == (
        "always-dc ignores user_idle",)
