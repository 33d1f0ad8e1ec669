"""The agent's batch export (the checkpoint pass's export_states): per-NF errors, and the
reply's size budget."""

from __future__ import annotations

import json
from typing import Any, cast

from netfate.agent.exports import export_states
from netfate.errors import NotFound
from netfate.node import NodeDrivers


class _Driver:
    def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
        self.docs = docs
        self.asked: list[str] = []

    def export_state(self, iid: str) -> dict[str, Any]:
        self.asked.append(iid)
        if iid not in self.docs:
            raise NotFound(f"no NF {iid}")
        return self.docs[iid]


class _Node:
    def __init__(self, driver: _Driver) -> None:
        self.driver = driver

    def driver_of(self, iid: str) -> _Driver:
        return self.driver


def _node(docs: dict[str, dict[str, Any]]) -> tuple[NodeDrivers, _Driver]:
    d = _Driver(docs)
    return cast(NodeDrivers, _Node(d)), d


def test_one_nf_that_fails_costs_its_own_entry_only() -> None:
    node, _ = _node({"a": {"x": 1}, "c": {"x": 3}})
    out = export_states(node, ["a", "b", "c", "a"], budget=10_000)
    assert out["states"] == {"a": {"x": 1}, "c": {"x": 3}}
    assert list(out["errors"]) == ["b"] and "no NF b" in out["errors"]["b"]
    assert out["left"] == []


def test_what_does_not_fit_the_budget_is_left_for_another_command() -> None:
    doc = {"conntrack": ["x" * 100]}
    size = len(json.dumps(doc, separators=(",", ":")))
    node, driver = _node({i: doc for i in "abcde"})
    out = export_states(node, list("abcde"), budget=2 * size + 1)
    assert list(out["states"]) == ["a", "b"] and out["left"] == ["c", "d", "e"]
    assert driver.asked == ["a", "b", "c"]  # c was exported, found too big, left
    # the first document always goes, however big: every command makes progress
    out = export_states(node, ["d", "e"], budget=1)
    assert list(out["states"]) == ["d"] and out["left"] == ["e"]
