"""Shared NFs on the data plane (issue 11, NNF paper IV.E): one NF instance in the DC serves
two users; the switch tags each user's traffic with their VLAN on the NF's ports and pops it
on the way out, so the NF keeps the tenants apart and one tenant's tag never passes as
another's traffic. Fake switches, as in test_controller_overlay."""

from __future__ import annotations

from netfate.controller import pipeline as pl
from netfate.controller.fake import FakeSwitch, as_reported
from netfate.controller.flows import build
from netfate.controller.model import Hop, Transit
from netfate.controller.ofmsg import from_stats

from .test_controller_overlay import (
    DC_PORTS,
    IP2,
    M1,
    M2,
    TO_DC,
    cpe,
    dc,
    down_pkt,
    switch,
    up_pkt,
    user,
    walk,
)

V1, V2 = pl.tenant_vlan("user1"), pl.tenant_vlan("user2")


def shared(vlan: int) -> Hop:
    return Hop(lan="ins-l", wan="ins-w", vlan=vlan)


def stack() -> tuple[FakeSwitch, FakeSwitch]:
    a = switch(cpe(user(chain=(TO_DC,)), user("user2", M2, IP2, "a2", chain=(TO_DC,))),
               {"a1": 1, "a2": 2, "up": 10, "t-dc": 50, "t-pe": 51})
    b = switch(dc(Transit(name="user1", mac=M1, port="t-cpe1", segment=0,
                          chain=(shared(V1),)),
                  Transit(name="user2", mac=M2, port="t-cpe1", segment=0,
                          chain=(shared(V2),))), DC_PORTS)
    return a, b


def test_tenant_vlans_are_distinct_valid_ids() -> None:
    assert V1 != V2 and 1 <= V1 <= 4094 and 1 <= V2 <= 4094
    assert pl.tenant_vlan("user1") == V1  # the same on every switch and every run


def test_each_users_traffic_enters_the_shared_nf_with_their_vlan_and_leaves_untagged() -> None:
    a, b = stack()
    for name, mac, src, port, vid in (("user1", M1, "10.90.1.1", "a1", V1),
                                       ("user2", M2, IP2, "a2", V2)):
        into = [s for p, s in b.process({**up_pkt(mac, src, port), "in_port": "t-cpe1",
                                          "tunnel_id": pl.tunnel_key(name, 0, pl.UP_OUT)})
                if p == "ins-l"]
        assert into and into[0]["vlan_vid"] == pl.VLAN_PRESENT | vid, name
        path, out = walk(a, b, up_pkt(mac, src, port))
        assert path == ["t-dc", "dc:ins-l", "dc:t-cpe1", "up"], name
        assert "vlan_vid" not in out[0][1], "the tag never leaves the NF's ports"
        path, out = walk(a, b, down_pkt(mac, src))
        assert path == ["t-dc", "dc:ins-w", "dc:t-cpe1", port], name
        assert "vlan_vid" not in out[0][1]


def test_one_tenants_tag_never_passes_as_the_others_traffic() -> None:
    _, b = stack()
    # out of the shared NF with user2's address but user1's tag, or with no tag at all
    pkt = {**up_pkt(M2, IP2, "a2"), "in_port": "ins-w"}
    assert b.process({**pkt, "vlan_vid": pl.VLAN_PRESENT | V1}) == []
    assert b.process(pkt) == []
    out = b.process({**pkt, "vlan_vid": pl.VLAN_PRESENT | V2})
    assert [p for p, _ in out] == ["t-cpe1"]
    assert out[0][1]["tunnel_id"] == pl.tunnel_key("user2", 0, pl.UP_BACK)


def test_two_tenants_with_the_same_vlan_on_one_nf_the_later_is_left_out() -> None:
    fs = build(dc(Transit(name="user1", mac=M1, port="t-cpe1", segment=0, chain=(shared(7),)),
                  Transit(name="user2", mac=M2, port="t-cpe1", segment=0,
                          chain=(shared(7),))), DC_PORTS)
    assert any("user2" in s and "VLAN 7" in s for s in fs.skipped), fs.skipped
    assert not any(f.cookie == pl.cookie(pl.Kind.TRANSIT, "user2") for f in fs.flows)


def test_push_and_pop_survive_the_switchs_report() -> None:
    """sync compares installed flows with wanted ones: the VLAN actions must read back."""
    fs = build(dc(Transit(name="user1", mac=M1, port="t-cpe1", segment=0,
                          chain=(shared(V1),))), DC_PORTS)
    tagged = [f for f in fs.flows if f.push_vlan or f.pop_vlan]
    assert {f.push_vlan for f in tagged} == {True, False} and tagged
    for f in tagged:
        assert from_stats(as_reported(f)) == f
