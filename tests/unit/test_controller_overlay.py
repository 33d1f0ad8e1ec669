"""Chains across nodes (issue 11): a user's traffic crosses the local NFs, a tunnel to another
node's NFs and back, in order, both ways; the tunnel key alone tells the far switch whose
traffic it is and which stretch comes next. Two fake switches joined by their tunnels."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from netfate.controller import pipeline as pl
from netfate.controller.fake import FakeSwitch, ip_packet
from netfate.controller.flows import build
from netfate.controller.model import Client, Hop, Remote, SwitchState, Transit

M1, M2 = "02:aa:00:00:00:01", "02:aa:00:00:00:02"
IP1, IP2, INET, GW_MAC = "10.90.1.1", "10.90.1.2", "10.255.0.1", "02:bb:00:00:00:01"
CPE_PORTS = {"a1": 1, "a2": 2, "up": 10, "t-dc": 50, "t-pe": 51, "fw-l": 31, "fw-w": 32}
DC_PORTS = {"up": 10, "t-cpe1": 50, "ins-l": 33, "ins-w": 34, "fw2-l": 41, "fw2-w": 42}
NFS = {"fw-l": "fw-w", "fw-w": "fw-l", "ins-l": "ins-w", "ins-w": "ins-l",
       "fw2-l": "fw2-w", "fw2-w": "fw2-l"}
FW, INS, FW2 = Hop(lan="fw-l", wan="fw-w"), Hop(lan="ins-l", wan="ins-w"), \
    Hop(lan="fw2-l", wan="fw2-w")
TO_DC = Remote(node="dc", port="t-dc", segment=0)


def cpe(*users: Client) -> SwitchState:
    return SwitchState(node="cpe1", role="cpe", uplink="up", access_ports=("a1", "a2"),
                       users=users, tunnels=("t-dc", "t-pe"))


def dc(*transits: Transit) -> SwitchState:
    return SwitchState(node="dc", role="dc", infra_ports=("up",), transits=transits,
                       tunnels=("t-cpe1",))


def user(name: str = "user1", mac: str = M1, ip: str = IP1, port: str = "a1",
         chain: tuple[Any, ...] = (FW, TO_DC)) -> Client:
    return Client(name=name, mac=mac, ip=ip, port=port, authenticated=True, chain=chain)


def switch(state: SwitchState, ports: dict[str, int]) -> FakeSwitch:
    fs = build(state, ports)
    assert not fs.skipped, fs.skipped
    sw = FakeSwitch(ports)
    sw.apply(fs.flows)
    return sw


def walk(a: FakeSwitch, b: FakeSwitch, pkt: dict[str, Any], limit: int = 24
         ) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
    """Follow a packet across NFs on both switches and the tunnel between them (a's "t-dc"
    is b's "t-cpe1"). Returns every port it left by (b's prefixed "dc:") and its exits."""
    path: list[str] = []
    out: list[tuple[str, dict[str, Any]]] = []
    todo: list[tuple[FakeSwitch, dict[str, Any]]] = [(a, pkt)]
    while todo:
        if len(path) > limit:
            raise AssertionError(f"loop: {path}")
        sw, cur = todo.pop(0)
        here = "" if sw is a else "dc:"
        for port, sent in sw.process(cur):
            path.append(here + port)
            if port in NFS:
                todo.append((sw, {**sent, "in_port": NFS[port]}))
            elif sw is a and port == "t-dc":
                todo.append((b, {**sent, "in_port": "t-cpe1"}))
            elif sw is b and port == "t-cpe1":
                todo.append((a, {**sent, "in_port": "t-dc"}))
            else:
                out.append((here + port, sent))
    return path, out


def up_pkt(mac: str = M1, src: str = IP1, port: str = "a1", **kw: Any) -> dict[str, Any]:
    return ip_packet(port, mac, GW_MAC, src, INET, **kw)


def down_pkt(mac: str = M1, dst: str = IP1, **kw: Any) -> dict[str, Any]:
    kw.setdefault("sport", 80)
    kw.setdefault("dport", 40000)
    return ip_packet("up", GW_MAC, mac, INET, dst, **kw)


def test_split_chain_crosses_the_cpe_firewall_then_the_dc_inspector_and_back() -> None:
    a = switch(cpe(user()), CPE_PORTS)
    b = switch(dc(Transit(name="user1", mac=M1, port="t-cpe1", segment=0, chain=(INS,))),
               DC_PORTS)
    path, out = walk(a, b, up_pkt(dport=80))
    assert path == ["fw-l", "t-dc", "dc:ins-l", "dc:t-cpe1", "up"]
    assert [p for p, _ in out] == ["up"]
    path, out = walk(a, b, down_pkt())
    assert path == ["t-dc", "dc:ins-w", "dc:t-cpe1", "fw-w", "a1"]


def test_the_tunnel_key_carries_the_user_the_segment_and_the_leg() -> None:
    a = switch(cpe(user()), CPE_PORTS)
    sent = [s for p, s in a.process(up_pkt()) if p == "fw-l"]
    sent = [s for p, s in a.process({**sent[0], "in_port": "fw-w"}) if p == "t-dc"]
    assert sent[0]["tunnel_id"] == pl.tunnel_key("user1", 0, pl.UP_OUT)
    assert pl.tunnel_key("user1", 0, pl.UP_OUT) >> 6 == pl.tunnel_user("user1")
    assert pl.tunnel_key("user1", 0, pl.UP_OUT) < 1 << 24  # a VXLAN VNI


def test_a_firewall_only_in_the_dc_serves_the_user_both_ways() -> None:
    a = switch(cpe(user(chain=(TO_DC,))), CPE_PORTS)
    b = switch(dc(Transit(name="user1", mac=M1, port="t-cpe1", segment=0, chain=(FW2,))),
               DC_PORTS)
    assert walk(a, b, up_pkt())[0] == ["t-dc", "dc:fw2-l", "dc:t-cpe1", "up"]
    assert walk(a, b, down_pkt())[0] == ["t-dc", "dc:fw2-w", "dc:t-cpe1", "a1"]


def test_two_stretches_on_the_dc_come_back_between_them_in_order() -> None:
    chain = (Remote(node="dc", port="t-dc", segment=0), FW, Remote(node="dc", port="t-dc",
                                                                    segment=1))
    a = switch(cpe(user(chain=chain)), CPE_PORTS)
    b = switch(dc(Transit(name="user1", mac=M1, port="t-cpe1", segment=0, chain=(FW2,)),
                  Transit(name="user1", mac=M1, port="t-cpe1", segment=1, chain=(INS,))),
               DC_PORTS)
    assert walk(a, b, up_pkt())[0] == ["t-dc", "dc:fw2-l", "dc:t-cpe1", "fw-l", "t-dc",
                                        "dc:ins-l", "dc:t-cpe1", "up"]
    assert walk(a, b, down_pkt())[0] == ["t-dc", "dc:ins-w", "dc:t-cpe1", "fw-w", "t-dc",
                                          "dc:fw2-w", "dc:t-cpe1", "a1"]


def test_isolation_another_users_traffic_never_enters_a_transit() -> None:
    b = switch(dc(Transit(name="user1", mac=M1, port="t-cpe1", segment=0, chain=(INS,))),
               DC_PORTS)
    k1 = pl.tunnel_key("user1", 0, pl.UP_OUT)
    # user2's frame with user1's key, user1's frame with user2's key, no key at all
    assert b.process({**up_pkt(mac=M2, src=IP2), "in_port": "t-cpe1", "tunnel_id": k1}) == []
    k2 = pl.tunnel_key("user2", 0, pl.UP_OUT)
    assert b.process({**up_pkt(), "in_port": "t-cpe1", "tunnel_id": k2}) == []
    assert b.process({**up_pkt(), "in_port": "t-cpe1"}) == []
    # and the access side takes back only the user's own return key
    a = switch(cpe(user(), user("user2", M2, IP2, "a2", chain=(TO_DC,))), CPE_PORTS)
    back2 = pl.tunnel_key("user2", 0, pl.UP_BACK)
    assert a.process({**up_pkt(), "in_port": "t-dc", "tunnel_id": back2}) == []


def test_two_users_share_the_dc_and_stay_apart() -> None:
    a = switch(cpe(user(chain=(TO_DC,)), user("user2", M2, IP2, "a2", chain=(TO_DC,))),
               CPE_PORTS)
    b = switch(dc(Transit(name="user1", mac=M1, port="t-cpe1", segment=0, chain=(FW2,)),
                  Transit(name="user2", mac=M2, port="t-cpe1", segment=0, chain=(INS,))),
               DC_PORTS)
    assert walk(a, b, up_pkt())[0] == ["t-dc", "dc:fw2-l", "dc:t-cpe1", "up"]
    assert walk(a, b, up_pkt(mac=M2, src=IP2, port="a2"))[0] == [
        "t-dc", "dc:ins-l", "dc:t-cpe1", "up"]
    assert walk(a, b, down_pkt(mac=M2, dst=IP2))[0] == ["t-dc", "dc:ins-w", "dc:t-cpe1", "a2"]


def test_a_remote_step_needs_a_tunnel_port_of_the_switch() -> None:
    with pytest.raises(ValidationError, match="not tunnel ports"):
        SwitchState(node="cpe1", role="cpe", uplink="up", access_ports=("a1",),
                    users=(user(),))
    with pytest.raises(ValidationError, match="segment appears twice"):
        user(chain=(TO_DC, FW, TO_DC))


def test_a_missing_tunnel_port_leaves_only_that_user_out() -> None:
    fs = build(cpe(user(), user("user2", M2, IP2, "a2", chain=(FW2,))),
               {k: v for k, v in CPE_PORTS.items() if k != "t-dc"} | {"fw2-l": 41, "fw2-w": 42})
    assert any("user user1" in s and "t-dc" in s for s in fs.skipped)
    assert not any("user2" in s for s in fs.skipped)
