"""A node's reported CPUs that are not finite (found by the breaker pass): refused on the
bus, and one already stored counts as not reported, so the resolver (math.ceil) never
raises OverflowError for every placement."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from netfate.bus.messages import Resources
from netfate.orchestrator.snapshot import node_view
from netfate.resolver import Implementation, resolve


def test_infinite_cpus_are_refused_on_the_bus() -> None:
    with pytest.raises(ValidationError):
        Resources.model_validate_json(
            '{"mem_total_mb": 1, "mem_free_mb": 1, "cpu_util": 0, "cpus": Infinity}')


def test_stored_infinite_cpus_count_as_not_reported() -> None:
    row = SimpleNamespace(name="cpe1", role=SimpleNamespace(value="cpe"), online=True,
                          capabilities=[], infrastructure={},
                          resources={"mem_total_mb": 256, "mem_free_mb": 256,
                                     "cpu_util": 0.0, "cpus": float("inf")})
    view = node_view(row)
    assert view.cpus is None
    assert resolve([Implementation("native")], [], view).flavour == "native"
