"""Mid-migration anchoring against the fake switch: a user visiting another CPE keeps crossing
the NFs at the CPE they came from (Anchored there), the core diverting their traffic."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from netfate.controller.fake import FakeSwitch, arp_packet, ip_packet
from netfate.controller.flows import build
from netfate.controller.model import Anchored, Client, Hop, Location, SwitchState

M1, M2 = "02:aa:00:00:00:01", "02:aa:00:00:00:02"
IP1, IP2 = "10.90.1.1", "10.90.1.2"
GW_MAC, GW, INET = "02:bb:00:00:00:01", "10.90.0.1", "10.255.0.1"
FW = Hop(lan="fw-l", wan="fw-w")
CPE_PORTS = {"a1": 1, "a2": 2, "up": 10, "fw-l": 31, "fw-w": 32, "fw2-l": 41, "fw2-w": 42}
CORE_PORTS = {"c1": 1, "c2": 2, "inet": 3}


def switch(state: SwitchState, ports: dict[str, int]) -> FakeSwitch:
    fs = build(state, ports)
    assert not fs.skipped
    sw = FakeSwitch(ports)
    sw.apply(fs.flows)
    return sw


def exits(sw: FakeSwitch, pkt: dict[str, Any]) -> list[str]:
    return sw.trace(pkt, {}).exits  # one hop at a time: NF ports are exits here


# -- the CPE still running the user's NFs ---------------------------------------------------
def anchor_cpe(**kw: Any) -> SwitchState:
    # A local user with their own firewall too: the anchored flows must not disturb it.
    local = Client(name="user2", mac=M2, ip=IP2, port="a2", authenticated=True,
                 chain=(Hop(lan="fw2-l", wan="fw2-w"),))
    base: dict[str, Any] = dict(node="cpe1", role="cpe", uplink="up", access_ports=("a1", "a2"),
                                users=(local,),
                                anchored=(Anchored(name="user1", mac=M1, ip=IP1, chain=(FW,)),))
    return SwitchState(**{**base, **kw})


def test_anchored_users_upstream_comes_from_the_uplink_crosses_the_nf_and_goes_back_up() -> None:
    sw = switch(anchor_cpe(), CPE_PORTS)
    assert exits(sw, ip_packet("up", M1, GW_MAC, IP1, INET)) == ["fw-l"]
    assert exits(sw, ip_packet("fw-w", M1, GW_MAC, IP1, INET)) == ["up"]
    nfs = {"fw-l": "fw-w", "fw-w": "fw-l"}
    assert sw.trace(ip_packet("up", M1, GW_MAC, IP1, INET), nfs).path == ["fw-l", "up"]


def test_anchored_users_downstream_comes_from_the_uplink_crosses_the_nf_and_goes_back_up() -> None:
    sw = switch(anchor_cpe(), CPE_PORTS)
    assert exits(sw, ip_packet("up", GW_MAC, M1, INET, IP1)) == ["fw-w"]
    assert exits(sw, ip_packet("fw-l", GW_MAC, M1, INET, IP1)) == ["up"]


def test_anchor_cpe_drops_other_addresses_from_the_uplink() -> None:
    sw = switch(anchor_cpe(), CPE_PORTS)
    assert exits(sw, ip_packet("up", "02:aa:00:00:00:09", GW_MAC, IP1, INET)) == []  # other MAC
    assert exits(sw, ip_packet("up", M1, GW_MAC, "10.90.1.77", INET)) == []  # other IP
    assert exits(sw, ip_packet("up", GW_MAC, M1, INET, "10.90.1.77")) == []
    assert exits(sw, ip_packet("up", GW_MAC, "02:aa:00:00:00:09", INET, IP1)) == []
    # the local user is still served as before
    assert exits(sw, ip_packet("a2", M2, GW_MAC, IP2, INET)) == ["fw2-l"]
    assert exits(sw, ip_packet("up", GW_MAC, M2, INET, IP2)) == ["fw2-w"]


# -- the core ---------------------------------------------------------------------------------
def core(anchor: str | None = "c1") -> SwitchState:
    loc = Location(user="user1", mac=M1, ip=IP1, port="c2", anchor=anchor)
    return SwitchState(node="core", role="pe", infra_ports=("c1", "c2", "inet"),
                       locations=(loc,))


def test_core_sends_the_visitors_upstream_to_the_anchor_cpe() -> None:
    sw = switch(core(), CORE_PORTS)
    assert exits(sw, ip_packet("c2", M1, GW_MAC, IP1, INET)) == ["c1"]
    # back from the anchor after the NFs, toward another MAC: switched normally
    assert exits(sw, ip_packet("c1", M1, GW_MAC, IP1, INET)) == ["normal"]


def test_core_sends_traffic_to_the_visitor_via_the_anchor_cpe() -> None:
    sw = switch(core(), CORE_PORTS)
    assert exits(sw, ip_packet("inet", GW_MAC, M1, INET, IP1)) == ["c1"]
    assert exits(sw, ip_packet("c1", GW_MAC, M1, INET, IP1)) == ["c2"]


def test_core_sends_arp_for_the_visitor_to_where_they_are() -> None:
    sw = switch(core(), CORE_PORTS)
    assert exits(sw, arp_packet("inet", GW_MAC, GW, IP1)) == ["c2"]


def test_core_without_an_anchor_sends_traffic_straight_to_the_user() -> None:
    sw = switch(core(anchor=None), CORE_PORTS)
    assert exits(sw, ip_packet("inet", GW_MAC, M1, INET, IP1)) == ["c2"]
    assert exits(sw, ip_packet("c2", M1, GW_MAC, IP1, INET)) == ["normal"]


# -- model validation -------------------------------------------------------------------------
def test_model_rejects_inconsistent_anchors() -> None:
    with pytest.raises(ValidationError, match="anchor"):
        Location(user="user1", mac=M1, ip=IP1, port="c1", anchor="c1")
    with pytest.raises(ValidationError, match="anchor"):
        Location(user="user1", mac=M1, port="c2", anchor="c1")
    with pytest.raises(ValidationError, match="no uplink"):
        anchor_cpe(uplink=None, users=())
    with pytest.raises(ValidationError, match="both attached and anchored"):
        anchor_cpe(users=(Client(name="user1", mac=M1, ip=IP1, port="a1"),))


# -- between the anchored user and a user local to the anchor CPE ---------------------------
# The core cannot tell a packet that has crossed one user's chain from one that has not (both
# come from the anchor CPE), so the CPE hands it from one chain to the other itself.
BUMPS = {"fw-l": "fw-w", "fw-w": "fw-l", "fw2-l": "fw2-w", "fw2-w": "fw2-l"}


def test_anchored_user_to_a_user_local_at_the_anchor_cpe_crosses_their_nfs_first() -> None:
    sw = switch(anchor_cpe(), CPE_PORTS)
    assert exits(sw, ip_packet("up", M1, M2, IP1, IP2)) == ["fw-l"]


def test_anchored_user_to_a_local_user_crosses_both_chains_and_never_goes_back_up() -> None:
    sw = switch(anchor_cpe(), CPE_PORTS)
    assert sw.trace(ip_packet("up", M1, M2, IP1, IP2), BUMPS).path == ["fw-l", "fw2-w", "a2"]


def test_a_local_user_to_the_anchored_user_crosses_both_chains_then_goes_up() -> None:
    sw = switch(anchor_cpe(), CPE_PORTS)
    assert sw.trace(ip_packet("a2", M2, M1, IP2, IP1), BUMPS).path == ["fw2-l", "fw-w", "up"]
    # the anchored user's traffic elsewhere is unchanged
    assert sw.trace(ip_packet("up", M1, GW_MAC, IP1, INET), BUMPS).path == ["fw-l", "up"]
    assert sw.trace(ip_packet("a2", M2, GW_MAC, IP2, INET), BUMPS).path == ["fw2-l", "up"]


def test_a_local_user_without_nfs_and_the_anchored_user_reach_each_other() -> None:
    bare = Client(name="user2", mac=M2, ip=IP2, port="a2", authenticated=True)
    sw = switch(anchor_cpe(users=(bare,)), CPE_PORTS)
    assert sw.trace(ip_packet("up", M1, M2, IP1, IP2), BUMPS).path == ["fw-l", "a2"]
    assert sw.trace(ip_packet("a2", M2, M1, IP2, IP1), BUMPS).path == ["fw-w", "up"]
    assert sw.trace(ip_packet("a2", M2, GW_MAC, IP2, INET), BUMPS).path == ["up"]


def test_a_local_users_classifier_chain_applies_to_the_anchored_users_traffic() -> None:
    from netfate.controller.model import Classifier

    web = Classifier(name="web", priority=10, ip_proto=6, remote_port=80,
                     chain=(Hop(lan="fw2-l", wan="fw2-w"),))
    local = Client(name="user2", mac=M2, ip=IP2, port="a2", authenticated=True,
                   classifiers=(web,))
    sw = switch(anchor_cpe(users=(local,)), CPE_PORTS)
    to_web = ip_packet("a2", M2, M1, IP2, IP1, proto=6, dport=80)
    assert sw.trace(to_web, BUMPS).path == ["fw2-l", "fw-w", "up"]
    assert sw.trace(ip_packet("a2", M2, M1, IP2, IP1, dport=443), BUMPS).path == ["fw-w", "up"]
    # and back from the anchored user's port 80: the same class, both ways
    back = ip_packet("up", M1, M2, IP1, IP2, sport=80, dport=40000)
    assert sw.trace(back, BUMPS).path == ["fw-l", "fw2-w", "a2"]
    other = ip_packet("up", M1, M2, IP1, IP2, sport=443, dport=40000)
    assert sw.trace(other, BUMPS).path == ["fw-l", "a2"]
