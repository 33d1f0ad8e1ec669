"""A node's switch as the troubleshooting report reads it (netfate.agent.switch_dump)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from netfate.agent.switch_dump import dump
from netfate.bus.messages import Command, DumpSpec


class Switch:
    def __init__(self, flows: list[dict[str, Any]]) -> None:
        self.flows = flows

    def dump_flows(self, lsi: str) -> list[dict[str, Any]]:
        return self.flows

    def port_states(self, lsi: str) -> dict[str, tuple[list[str], list[str]]]:
        return {"up1": (["PORT_DOWN"], ["LINK_DOWN"]), "h1": ([], ["LIVE"])}


def _flow(n: int, **match: Any) -> dict[str, Any]:
    return {"cookie": n, "priority": 100, "table_id": 0, "match": match, "packets": n}


def test_only_the_flows_naming_the_user_busiest_first_and_bounded() -> None:
    sw = Switch([_flow(1, eth_src="02:00:00:00:01:01"),
                 _flow(5, ipv4_src=("10.90.1.1", "255.255.255.255")),
                 _flow(9, ipv4_src="10.90.1.10"),  # another user: not a prefix match
                 _flow(7, in_port=3)])
    got = dump(sw, "br", DumpSpec(mentions=["02:00:00:00:01:01".upper(), "10.90.1.1"]))
    assert [f["cookie"] for f in got["flows"]] == [5, 1]
    assert got["flows"][0]["match"]["ipv4_src"] == ["10.90.1.1", "255.255.255.255"]
    assert got["flows_total"] == 4 and got["flows_matching"] == 2
    assert got["ports"]["up1"] == {"config": ["PORT_DOWN"], "state": ["LINK_DOWN"]}
    bounded = dump(sw, "br", DumpSpec(max_flows=1))
    assert [f["cookie"] for f in bounded["flows"]] == [9] and bounded["flows_matching"] == 4


def test_a_dump_command_is_bounded() -> None:
    with pytest.raises(ValidationError):
        DumpSpec(mentions=["x"] * 9)
    with pytest.raises(ValidationError):
        DumpSpec(max_flows=5000)
    with pytest.raises(ValidationError):
        DumpSpec(mentions=["x" * 65])
    cmd = Command(op="switch_dump", dump=DumpSpec(mentions=["10.90.1.1"]))
    assert Command.model_validate_json(cmd.model_dump_json()) == cmd
