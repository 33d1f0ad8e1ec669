"""The controller's pipeline against a fake multi-table switch: what happens to packets."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from netfate.controller import pipeline as pl
from netfate.controller.fake import FakeSwitch, arp_packet, ip_packet
from netfate.controller.flows import build
from netfate.controller.model import (
    Classifier,
    Client,
    Hop,
    Location,
    ServicesAttachment,
    SwitchState,
)

M1, M2, M3 = "02:aa:00:00:00:01", "02:aa:00:00:00:02", "02:aa:00:00:00:03"
IP1, IP2 = "10.90.1.1", "10.90.1.2"
GW_MAC, GW, INET = "02:bb:00:00:00:01", "10.90.0.1", "10.255.0.1"
PORTAL_MAC, PORTAL = "02:5e:00:00:00:01", "10.90.0.2"
PORTS = {"a1": 1, "a2": 2, "a3": 3, "up": 10, "svc": 20,
         "fw1-l": 31, "fw1-w": 32, "ins1-l": 33, "ins1-w": 34, "fw2-l": 41, "fw2-w": 42}
NFS = {"fw1-l": "fw1-w", "fw1-w": "fw1-l", "ins1-l": "ins1-w", "ins1-w": "ins1-l",
       "fw2-l": "fw2-w", "fw2-w": "fw2-l"}
FW1, INS1, FW2 = Hop(lan="fw1-l", wan="fw1-w"), Hop(lan="ins1-l", wan="ins1-w"), \
    Hop(lan="fw2-l", wan="fw2-w")
SERVICES = ServicesAttachment(port="svc", mac=PORTAL_MAC, ip=PORTAL)


def cpe(*users: Client, services: ServicesAttachment | None = SERVICES) -> SwitchState:
    return SwitchState(node="cpe1", role="cpe", uplink="up", access_ports=("a1", "a2", "a3"),
                       services=services, users=users)


def user1(**kw: Any) -> Client:
    base: dict[str, Any] = dict(name="user1", mac=M1, ip=IP1, port="a1", authenticated=True,
                                chain=(FW1,), idle_timeout=60)
    return Client(**{**base, **kw})


def user2(**kw: Any) -> Client:
    base: dict[str, Any] = dict(name="user2", mac=M2, ip=IP2, port="a2", authenticated=True,
                                chain=(FW2,))
    return Client(**{**base, **kw})


def switch(state: SwitchState, ports: dict[str, int] = PORTS) -> FakeSwitch:
    fs = build(state, ports)
    assert not fs.skipped
    sw = FakeSwitch(ports)
    sw.apply(fs.flows)
    return sw


def up(mac: str = M1, src: str = IP1, dst: str = INET, port: str = "a1",
       **kw: Any) -> dict[str, Any]:
    return ip_packet(port, mac, GW_MAC, src, dst, **kw)


def down(mac: str = M1, dst: str = IP1, src: str = INET, **kw: Any) -> dict[str, Any]:
    kw.setdefault("sport", 80)
    kw.setdefault("dport", 40000)
    return ip_packet("up", GW_MAC, mac, src, dst, **kw)


# -- authenticated users: chains -------------------------------------------------------------
def test_traffic_crosses_the_chain_in_order_and_leaves_by_the_wan_port() -> None:
    sw = switch(cpe(user1(chain=(FW1, INS1))))
    t = sw.trace(up(dport=22), NFS)
    assert t.path == ["fw1-l", "ins1-l", "up"]
    assert t.out == [("up", {k: v for k, v in up(dport=22).items() if k != "in_port"})]


def test_return_traffic_crosses_the_chain_in_reverse_to_the_access_port() -> None:
    sw = switch(cpe(user1(chain=(FW1, INS1))))
    t = sw.trace(down(sport=22), NFS)
    assert t.path == ["ins1-w", "fw1-w", "a1"]


def test_empty_chain_goes_straight_out_and_back() -> None:
    sw = switch(cpe(user1(chain=())))
    assert sw.trace(up(), NFS).path == ["up"]
    assert sw.trace(down(), NFS).path == ["a1"]


def test_http_goes_through_the_inspector_and_the_rest_through_the_firewall() -> None:
    http = Classifier(name="http", priority=10, ip_proto=6, remote_port=80, chain=(INS1,))
    sw = switch(cpe(user1(chain=(FW1,), classifiers=(http,))))
    assert sw.trace(up(dport=80), NFS).path == ["ins1-l", "up"]
    assert sw.trace(up(dport=443), NFS).path == ["fw1-l", "up"]
    assert sw.trace(up(proto=17, dport=80), NFS).path == ["fw1-l", "up"]  # UDP/80 is not HTTP
    # the replies come back through the same NF as their requests went
    assert sw.trace(down(sport=80), NFS).path == ["ins1-w", "a1"]
    assert sw.trace(down(sport=443), NFS).path == ["fw1-w", "a1"]


def test_overlapping_classifiers_the_higher_priority_wins() -> None:
    tcp = Classifier(name="tcp", priority=10, ip_proto=6, chain=(FW1, INS1))
    web = Classifier(name="web", priority=20, ip_proto=6, remote_port=80, remote="10.255.0.0/16",
                     chain=(INS1,))
    sw = switch(cpe(user1(chain=(), classifiers=(tcp, web))))
    assert sw.trace(up(dport=80), NFS).path == ["ins1-l", "up"]
    assert sw.trace(up(dport=80, dst="10.200.0.1"), NFS).path == ["fw1-l", "ins1-l", "up"]
    assert sw.trace(up(proto=17, dport=53), NFS).path == ["up"]  # neither: default (empty)
    assert sw.trace(down(sport=80, src="10.200.0.1"), NFS).path == ["ins1-w", "fw1-w", "a1"]
    # INS1 is in both chains: what it hands back continues in the chain the packet is in
    assert sw.trace(down(sport=80), NFS).path == ["ins1-w", "a1"]


def test_an_authenticated_users_dns_and_portal_traffic_stays_local() -> None:
    sw = switch(cpe(user1()))
    assert sw.trace(up(dst=PORTAL, proto=17, dport=53), NFS).path == ["svc"]
    assert sw.trace(up(dst=PORTAL, dport=80), NFS).path == ["svc"]
    assert sw.trace(up(dst="8.8.8.8", proto=17, dport=53), NFS).path == ["fw1-l", "up"]


# -- unauthenticated users: captive portal ----------------------------------------------------
def test_dhcp_passes_to_the_cpe_for_known_and_new_clients() -> None:
    sw = switch(cpe(user1(authenticated=False, ip=None)))
    disc = ip_packet("a1", M1, "ff:ff:ff:ff:ff:ff", "0.0.0.0", "255.255.255.255",
                     proto=17, sport=68, dport=67)
    assert sw.trace(disc, NFS).exits == ["svc"]
    new = {**disc, "in_port": "a3", "eth_src": M3}
    assert sw.trace(new, NFS).exits == ["svc", "controller"]  # reported as ClientSeen
    offer = ip_packet("svc", PORTAL_MAC, "ff:ff:ff:ff:ff:ff", PORTAL, "255.255.255.255",
                      proto=17, sport=67, dport=68)
    assert sorted(sw.trace(offer, NFS).exits) == ["a1", "a2", "a3"]  # LAN only, not uplink
    unicast = {**offer, "eth_dst": M3, "ipv4_dst": "10.90.1.3"}
    assert sorted(sw.trace(unicast, NFS).exits) == ["a1", "a2", "a3"]


def test_unauthenticated_dns_to_any_resolver_goes_to_the_captive_resolver() -> None:
    """Issue #16: before login every DNS query, to whatever resolver, reaches the CPE's
    captive resolver (port 5353 marks it), never the internet; the answer gets port 53
    back on its way to the client."""
    sw = switch(cpe(user1(authenticated=False)))
    for dst in (PORTAL, "8.8.8.8", INET):
        for proto, field in ((17, "udp_dst"), (6, "tcp_dst")):
            t = sw.trace(up(dst=dst, proto=proto, dport=53), NFS)
            assert t.exits == ["svc"], (dst, proto)
            sent = t.out[0][1]
            assert sent[field] == 5353 and sent["eth_dst"] == PORTAL_MAC
            assert sent["ipv4_dst"] == dst
    for proto, field in ((17, "udp_src"), (6, "tcp_src")):
        reply = ip_packet("svc", PORTAL_MAC, M1, "8.8.8.8", IP1, proto=proto, sport=5353,
                          dport=40000)
        t = sw.trace(reply, NFS)
        assert t.exits == ["a1"] and t.out[0][1][field] == 53
    # A client without an address yet has nothing to ask; a new one's answers still pass.
    sw = switch(cpe(user1(authenticated=False, ip=None)))
    reply = ip_packet("svc", PORTAL_MAC, M1, PORTAL, IP1, proto=17, sport=5353, dport=4000)
    assert sw.trace(reply, NFS).out[0][1]["udp_src"] == 53


def test_authenticated_dns_goes_to_the_cpe_resolver_unchanged() -> None:
    sw = switch(cpe(user1()))
    t = sw.trace(up(dst=PORTAL, proto=17, dport=53), NFS)
    assert t.exits == ["svc"] and t.out[0][1]["udp_dst"] == 53


def test_pre_login_address_is_served_with_the_stable_one_until_renewal() -> None:
    """Issue #16: after login the device is served at once on the address it had before
    (its pre-login lease), both ways and through its chain, as well as on its stable one;
    nobody else's address passes."""
    old = "10.90.16.23"
    sw = switch(cpe(user1(extra_ips=(old,))))
    for src in (IP1, old):
        assert sw.trace(up(src=src, dport=22), NFS).path == ["fw1-l", "up"]
        assert sw.trace(down(dst=src), NFS).path == ["fw1-w", "a1"]
        assert sw.trace(arp_packet("a1", M1, src, GW), NFS).exits == ["up"]
        assert sw.trace(arp_packet("up", GW_MAC, GW, src), NFS).exits == ["a1"]
    assert sw.trace(up(src="10.90.16.24", dport=22), NFS).exits == []
    with pytest.raises(ValidationError):
        user1(authenticated=False, extra_ips=(old,))
    with pytest.raises(ValidationError):
        user1(extra_ips=(IP1,))
    with pytest.raises(ValidationError):  # one address for two users
        cpe(user1(extra_ips=(IP2,)), user2())


def test_unauthenticated_http_anywhere_is_redirected_to_the_portal() -> None:
    sw = switch(cpe(user1(authenticated=False)))
    t = sw.trace(up(dst=INET, dport=80), NFS)
    assert t.exits == ["svc"]
    sent = t.out[0][1]
    # Only the MAC is rewritten: the portal's namespace takes any destination address, so
    # its replies carry the address the browser asked for and need no reverse rewrite.
    assert sent["eth_dst"] == PORTAL_MAC and sent["ipv4_dst"] == INET
    assert sw.trace(up(dst=PORTAL, dport=80), NFS).out[0][1]["eth_dst"] == GW_MAC
    reply = ip_packet("svc", PORTAL_MAC, M1, INET, IP1, sport=80, dport=40000)
    assert sw.trace(reply, NFS).exits == ["a1"]


def test_unauthenticated_other_traffic_is_dropped_both_ways() -> None:
    sw = switch(cpe(user1(authenticated=False)))
    assert sw.trace(up(dport=443), NFS).exits == []
    assert sw.trace(up(dport=22), NFS).exits == []
    assert sw.trace(up(proto=1), NFS).exits == []  # ICMP
    assert sw.trace(up(proto=17, dport=123), NFS).exits == []
    assert sw.trace(down(), NFS).exits == []  # nothing reaches them from the uplink


def test_the_captive_portal_api_over_https_is_reachable_before_and_after_login() -> None:
    """RFC 8908 section 3: the API is https on the portal; a device asks it before login
    (captive) and after (seconds remaining). Only the portal's 443: other HTTPS before
    login is still dropped, and the answers come back."""
    for authenticated in (False, True):
        sw = switch(cpe(user1(authenticated=authenticated)))
        t = sw.trace(up(dst=PORTAL, dport=443), NFS)
        assert t.exits == ["svc"], authenticated
        reply = ip_packet("svc", PORTAL_MAC, M1, PORTAL, IP1, sport=443, dport=40000)
        assert sw.trace(reply, NFS).exits == ["a1"], authenticated
    sw = switch(cpe(user1(authenticated=False)))
    assert sw.trace(up(dst=INET, dport=443), NFS).exits == []


def test_arp_lets_any_client_resolve_the_gateway_and_the_portal() -> None:
    sw = switch(cpe(user1(authenticated=False)))
    assert sw.trace(arp_packet("a1", M1, IP1, GW), NFS).exits == ["up"]
    assert sw.trace(arp_packet("a1", M1, IP1, PORTAL), NFS).exits == ["svc"]
    assert sw.trace(arp_packet("a1", M1, "0.0.0.0", IP1), NFS).exits == ["up"]  # probe
    reply = arp_packet("up", GW_MAC, GW, IP1, op=2, eth_dst=M1)
    assert sw.trace(reply, NFS).exits == ["a1"]
    request = arp_packet("up", GW_MAC, GW, IP1)
    assert sw.trace(request, NFS).exits == ["a1"]
    assert sw.trace(arp_packet("up", GW_MAC, GW, "10.90.1.99"), NFS).exits == []


def test_a_separate_resolver_is_reached_like_the_portal() -> None:
    svc = ServicesAttachment(port="svc", mac=PORTAL_MAC, ip=PORTAL, dns_ip="10.90.0.3")
    sw = switch(cpe(user1(authenticated=False), services=svc))
    assert sw.trace(arp_packet("a1", M1, IP1, "10.90.0.3"), NFS).exits == ["svc"]
    assert sw.trace(up(dst="10.90.0.3", proto=17, dport=53), NFS).exits == ["svc"]
    sw = switch(cpe(user1(), services=svc))  # after login: that resolver, not the portal
    assert sw.trace(up(dst="10.90.0.3", proto=17, dport=53), NFS).exits == ["svc"]
    assert sw.trace(up(dst=PORTAL, proto=17, dport=53), NFS).path == ["fw1-l", "up"]


def test_captive_portal_without_services_drops_everything_but_arp() -> None:
    sw = switch(cpe(user1(authenticated=False), services=None))
    assert sw.trace(up(dport=80), NFS).exits == []
    assert sw.trace(arp_packet("a1", M1, IP1, GW), NFS).exits == ["up"]


# -- port security ------------------------------------------------------------------------------
@pytest.mark.parametrize("authenticated", [True, False])
def test_spoofed_source_ip_or_mac_is_dropped(authenticated: bool) -> None:
    sw = switch(cpe(user1(authenticated=authenticated), user2()))
    assert sw.trace(up(src="10.90.1.77", dport=80), NFS).exits == []   # IP spoofing
    assert sw.trace(up(src=IP2, dport=80), NFS).exits == []            # another user's IP
    assert sw.trace(up(mac=M3, dport=80), NFS).exits == []             # MAC spoofing
    assert sw.trace(up(mac=M2, src=IP2, dport=80), NFS).exits == []    # user2's on user1's port
    assert sw.trace(up(port="a3", dport=80), NFS).exits == []          # user1 on another port
    assert sw.trace(arp_packet("a1", M1, IP2, GW), NFS).exits == []    # ARP, spoofed sender IP
    assert sw.trace(arp_packet("a1", M1, IP1, GW, sha=M2), NFS).exits == []  # spoofed sender MAC
    assert sw.trace(arp_packet("a1", M3, IP1, GW), NFS).exits == []
    other = {"in_port": "a1", "eth_src": M1, "eth_dst": GW_MAC, "eth_type": 0x86DD}
    assert sw.trace(other, NFS).exits == []                             # not IPv4 or ARP


def test_inbound_traffic_needs_the_users_own_address() -> None:
    sw = switch(cpe(user1()))
    assert sw.trace(down(dst="10.90.1.77"), NFS).exits == []  # right MAC, wrong IP
    bcast = {**down(), "eth_dst": "ff:ff:ff:ff:ff:ff"}
    assert sw.trace(bcast, NFS).exits == []


def test_nf_ports_forward_only_what_the_chain_expects() -> None:
    own = Hop(lan="fw1-l", wan="fw1-w", own_macs=("02:cc:00:00:00:01",))
    sw = switch(cpe(user1(chain=(own,))))
    stranger = ip_packet("fw1-w", M3, GW_MAC, "10.90.1.77", INET)
    assert sw.trace(stranger, {}).exits == []
    assert sw.trace(arp_packet("fw1-l", M1, IP1, GW), {}).exits == []  # ARP never via NFs
    wrong_way = ip_packet("fw1-l", M1, GW_MAC, IP1, INET)  # upstream out of the LAN side
    assert sw.trace(wrong_way, {}).exits == []
    # the NF's own interface talks to the uplink, and is reached from it
    mine = ip_packet("fw1-w", "02:cc:00:00:00:01", GW_MAC, "10.90.5.5", INET)
    assert sw.trace(mine, {}).exits == ["up"]
    to_nf = ip_packet("up", GW_MAC, "02:cc:00:00:00:01", INET, "10.90.5.5")
    assert sw.trace(to_nf, {}).exits == ["fw1-w"]


def test_two_users_are_isolated() -> None:
    sw = switch(cpe(user1(), user2()))
    assert sw.trace(up(), NFS).path == ["fw1-l", "up"]
    assert sw.trace(up(mac=M2, src=IP2, port="a2"), NFS).path == ["fw2-l", "up"]
    assert sw.trace(down(mac=M2, dst=IP2), NFS).path == ["fw2-w", "a2"]
    # user2's packet handed out of user1's firewall goes nowhere (and vice versa)
    assert sw.trace(ip_packet("fw1-w", M2, GW_MAC, IP2, INET), {}).exits == []
    assert sw.trace(ip_packet("fw2-l", GW_MAC, M1, INET, IP1), {}).exits == []
    # no flow of user1's chain ever sees user2's traffic
    steer1 = [f for f in sw.flows.values() if f.cookie == pl.cookie(pl.Kind.STEER, "user1")]
    sw.hits.clear()
    sw.trace(up(mac=M2, src=IP2, port="a2"), NFS)
    sw.trace(down(mac=M2, dst=IP2), NFS)
    assert steer1 and not any(sw.hits[k] for k in sw.flows if sw.flows[k] in steer1)


# -- idle detection -----------------------------------------------------------------------------
def test_idle_flow_counts_both_directions_and_reports_its_removal() -> None:
    sw = switch(cpe(user1(idle_timeout=45), user2(idle_timeout=0)))
    idle = sw.table(pl.ACTIVITY)
    mine = [f for f in idle if f.cookie == pl.cookie(pl.Kind.IDLE, "user1")]
    assert len(mine) == 1 and mine[0].idle_timeout == 45 and mine[0].send_flow_removed
    assert [f for f in idle if f.idle_timeout] == mine  # user2 asked for no idle detection
    from netfate.controller.fake import key

    k = key(mine[0])
    sw.trace(up(), NFS)
    sw.trace(down(), NFS)
    assert sw.hits[k] == 2
    sw.trace(up(mac=M2, src=IP2, port="a2"), NFS)
    assert sw.hits[k] == 2
    # when it expires nothing else changes: traffic still crosses the chain
    sw.delete(mine)
    assert sw.trace(up(), NFS).path == ["fw1-l", "up"]


def test_unauthenticated_users_have_no_idle_flow() -> None:
    sw = switch(cpe(user1(authenticated=False)))
    assert all(not f.idle_timeout for f in sw.flows.values())


# -- core / PE ----------------------------------------------------------------------------------
CORE_PORTS = {"c1": 1, "c2": 2, "inet": 3, "dc": 4}


def core(port: str) -> SwitchState:
    return SwitchState(node="core", role="pe", infra_ports=("c1", "c2", "inet", "dc"),
                       locations=(Location(user="user1", mac=M1, ip=IP1, port=port),))


def test_core_sends_return_traffic_to_the_cpe_where_the_user_is_now() -> None:
    sw = switch(core("c1"), CORE_PORTS)
    reply = ip_packet("inet", GW_MAC, M1, INET, IP1)
    assert sw.trace(reply, {}).exits == ["c1"]
    assert sw.trace(arp_packet("inet", GW_MAC, GW, IP1), {}).exits == ["c1"]
    # the user moves to cpe2: the new state replaces the flows (as sync would)
    from netfate.controller.sync import diff

    new = build(core("c2"), CORE_PORTS).flows
    plan = diff(new, list(sw.flows.values()))
    sw.apply(plan.add)
    sw.delete(plan.delete)
    assert sw.trace(reply, {}).exits == ["c2"]
    assert sw.trace(arp_packet("inet", GW_MAC, GW, IP1), {}).exits == ["c2"]
    # a neighbour behind the same CPE reaches the user back through that port
    assert sw.trace({**reply, "in_port": "c2"}, {}).exits == ["c2"]


def test_core_switches_other_infrastructure_traffic_with_normal() -> None:
    sw = switch(core("c1"), CORE_PORTS)
    other = ip_packet("c1", M2, GW_MAC, IP2, INET)
    assert sw.trace(other, {}).exits == ["normal"]


def test_cpe_never_uses_normal_for_clients_or_the_uplink() -> None:
    sw = switch(cpe(user1()))
    assert all("normal" not in f.outputs for f in sw.flows.values())
    assert sw.trace(ip_packet("up", GW_MAC, M3, INET, "10.90.1.3"), NFS).exits == []


# -- the flow set itself ------------------------------------------------------------------------
def test_every_flow_is_ours_and_names_its_owner() -> None:
    http = Classifier(name="http", priority=10, ip_proto=6, remote_port=80, chain=(INS1,))
    fs = build(cpe(user1(classifiers=(http,)), user2()), PORTS)
    assert all(pl.is_ours(f.cookie) for f in fs.flows)
    kinds = {pl.kind_of(f.cookie) for f in fs.flows}
    assert {pl.Kind.BASE, pl.Kind.SERVICES, pl.Kind.USER, pl.Kind.STEER, pl.Kind.IDLE} <= kinds
    user_cookies = {pl.cookie(k, "user1") for k in pl.Kind}
    mine = [f for f in fs.flows if f.cookie in user_cookies]
    assert mine and all(f.cookie not in {pl.cookie(k, "user2") for k in pl.Kind} for f in mine)
    keys = [(f.table_id, f.priority, tuple(sorted(f.match.items()))) for f in fs.flows]
    assert len(keys) == len(set(keys))


def test_build_is_deterministic() -> None:
    st = cpe(user1(chain=(FW1, INS1)), user2())
    assert build(st, PORTS).flows == build(st, PORTS).flows


def test_a_missing_port_skips_only_what_needs_it_and_fails_closed() -> None:
    ports = {k: v for k, v in PORTS.items() if k != "fw1-l"}  # user1's NF is not there yet
    fs = build(cpe(user1(), user2()), ports)
    assert any("user1" in s and "fw1-l" in s for s in fs.skipped)
    sw = FakeSwitch(ports)
    sw.apply(fs.flows)
    assert sw.trace(up(), NFS).exits == []  # not around the firewall: not at all
    assert sw.trace(up(mac=M2, src=IP2, port="a2"), NFS).path == ["fw2-l", "up"]


def test_model_rejects_contradictions() -> None:
    with pytest.raises(ValidationError, match="not an access port"):
        cpe(user1(port="up"))
    with pytest.raises(ValidationError, match="share a MAC"):
        cpe(user1(), user2(mac=M1))
    with pytest.raises(ValidationError, match="share an IP"):
        cpe(user1(), user2(ip=IP1))
    with pytest.raises(ValidationError, match="same priority"):
        user1(classifiers=(
            Classifier(name="a", priority=5, ip_proto=6),
            Classifier(name="b", priority=5, ip_proto=17),
        ))
    with pytest.raises(ValidationError, match="needs ip_proto"):
        Classifier(name="a", priority=5, remote_port=80)
    with pytest.raises(ValidationError, match="twice"):
        user1(chain=(FW1, FW1))
    with pytest.raises(ValidationError, match="NF ports"):
        cpe(user1(chain=(Hop(lan="a2", wan="fw1-w"),)))
    with pytest.raises(ValidationError, match="multicast"):
        user1(mac="01:00:5e:00:00:01")
    with pytest.raises(ValidationError, match="infra ports"):
        SwitchState(node="x", role="pe", access_ports=("a",), infra_ports=("a",))
