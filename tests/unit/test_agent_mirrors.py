"""Which switch ports a troubleshooting probe gets copies of (netfate.agent.mirrors). Pure."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from netfate.agent.mirrors import mirror_name, selected_ports
from netfate.bus.messages import Command, MirrorSpec, SwitchPorts
from netfate.errors import InvalidInput, NotFound

PORTS = SwitchPorts(uplink="fate-cpe1-up", access=["fate-c1-h1", "fate-c1-h2"],
                    links={"fate-cpe1-up": "core", "fate-core-c1": "cpe1"},
                    stations={"02:00:00:00:00:01": "fate-c1-h1"})


def test_a_station_is_its_access_port_and_a_peer_its_links() -> None:
    assert selected_ports(PORTS, MirrorSpec(station_mac="02:00:00:00:00:01"), "cpe1") == \
        ["fate-c1-h1"]
    assert selected_ports(PORTS, MirrorSpec(station_mac="02:00:00:00:00:01".upper()),
                          "cpe1") == ["fate-c1-h1"]
    assert selected_ports(PORTS, MirrorSpec(peer_node="cpe1"), "core") == ["fate-core-c1"]


def test_what_is_not_here_is_named() -> None:
    with pytest.raises(NotFound, match=r"02:00:00:00:00:09.*cpe1"):
        selected_ports(PORTS, MirrorSpec(station_mac="02:00:00:00:00:09"), "cpe1")
    with pytest.raises(NotFound, match="no link toward dc"):
        selected_ports(PORTS, MirrorSpec(peer_node="dc"), "cpe1")
    with pytest.raises(InvalidInput, match=r"station_mac.*peer_node"):
        selected_ports(PORTS, MirrorSpec(), "cpe1")


def test_a_mirror_command_takes_only_a_unicast_mac_and_a_node_name() -> None:
    with pytest.raises(ValidationError):
        MirrorSpec(station_mac="ff:ff:ff:ff:ff:ff")
    with pytest.raises(ValidationError):
        MirrorSpec(peer_node="../etc")
    cmd = Command(op="mirror", instance_id="cpe1-operator-troubleshooter",
                  mirror=MirrorSpec(peer_node="cpe1"))
    assert Command.model_validate_json(cmd.model_dump_json()) == cmd
    assert mirror_name("cpe1-operator-troubleshooter") == \
        "netfate-ts-cpe1-operator-troubleshooter"
