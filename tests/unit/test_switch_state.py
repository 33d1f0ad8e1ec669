"""The orchestrator's switch-state decisions, pure: a World built by hand (no database, no
bus) goes through `switch_state`, and the controller's pipeline and fake switch check what
packets then do. Anchoring (make-before-break), chain locality and unknown clients."""

from __future__ import annotations

from typing import Any

from netfate import naming
from netfate.bus.messages import ServicesPort, SwitchPorts
from netfate.controller.fake import FakeSwitch, ip_packet
from netfate.controller.flows import build
from netfate.controller.model import Hop, Location, SwitchState
from netfate.db.repo.switching import ChainNf, SteeredRule, SwitchingRecords
from netfate.orchestrator.switch_state import UNKNOWN_CLIENT, World, hop_of, switch_state

M1, M9 = "02:aa:00:00:00:01", "02:aa:00:00:00:09"
IP1, LEASE9 = "10.90.1.1", "10.90.1.9"
GW_MAC, INET = "02:bb:00:00:00:01", "10.255.0.1"
FW_PORTS = ({"name": "lan", "role": "lan"}, {"name": "wan", "role": "wan"})
ROLES = {"cpe1": "cpe", "cpe2": "cpe", "core": "pe", "dc1": "dc"}


def fw(node: str) -> str:
    return f"{node}-user1-firewall"


def hop(node: str) -> Hop:
    return Hop(lan=naming.nf_port(fw(node), "lan"), wan=naming.nf_port(fw(node), "wan"))


def cpe_ports(node: str, stations: dict[str, str]) -> SwitchPorts:
    return SwitchPorts(uplink=f"{node}-up", access=[f"{node}-a1", f"{node}-a2"],
                       links={f"{node}-up": "core"}, stations=stations, leases={M9: LEASE9},
                       services=ServicesPort(port=f"{node}-svc", mac="02:5e:00:00:00:01",
                                             ip="10.90.0.2"))


CORE_PORTS = SwitchPorts(infra=["k-c1", "k-c2", "k-inet"],
                         links={"k-c1": "cpe1", "k-c2": "cpe2"})


def world(*, steered_at: str | None = "cpe1", nf_at: str = "cpe1", session_at: str | None = None,
          cpe1: dict[str, str] | None = None, cpe2: dict[str, str] | None = None,
          ready: bool = False, **kw: Any) -> World:
    rules = () if steered_at is None else (
        SteeredRule(user="user1", node=steered_at, mac=M1, ip=IP1, chain=(fw(nf_at),)),)
    records = SwitchingRecords(
        roles=ROLES, rules=rules,
        sessions={"user1": session_at or steered_at or "cpe1"},
        nfs={fw(nf_at): ChainNf(node=nf_at, nf="firewall", ports=FW_PORTS)},
        **kw)
    return World(records=records,
                 ports={"cpe1": cpe_ports("cpe1", cpe1 or {}),
                        "cpe2": cpe_ports("cpe2", cpe2 or {}), "core": CORE_PORTS},
                 anchors_ready=frozenset({"user1"}) if ready else frozenset())


def state(w: World, node: str) -> SwitchState:
    st = switch_state(w, node)
    assert st is not None
    return st


def ofports(st: SwitchState, extra: tuple[str, ...] = ()) -> dict[str, int]:
    names = [*st.access_ports, *st.infra_ports, *extra]
    names += [p for p in (st.uplink, st.services.port if st.services else None) if p]
    for u in [*st.users, *st.anchored]:
        names += [p for h in u.chain for p in (h.lan, h.wan)]
    return {n: i for i, n in enumerate(dict.fromkeys(names), start=1)}


def fake(st: SwitchState) -> tuple[FakeSwitch, dict[str, str]]:
    ports = ofports(st)
    fs = build(st, ports)
    assert not fs.skipped
    sw = FakeSwitch(ports)
    sw.apply(fs.flows)
    nfs: dict[str, str] = {}
    for u in [*st.users, *st.anchored]:
        for h in u.chain:
            nfs.update({h.lan: h.wan, h.wan: h.lan})
    return sw, nfs


# -- a CPE with its user's NFs ----------------------------------------------------------------
def test_a_steered_user_crosses_their_firewall_and_leaves_by_the_uplink() -> None:
    st = state(world(cpe1={M1: "cpe1-a2"}), "cpe1")
    [u] = st.users
    assert (u.name, u.port, u.authenticated, u.chain) == ("user1", "cpe1-a2", True,
                                                          (hop("cpe1"),))
    sw, nfs = fake(st)
    path = sw.trace(ip_packet("cpe1-a2", M1, GW_MAC, IP1, INET, dport=443), nfs).path
    assert path == [hop("cpe1").lan, "cpe1-up"]


def test_a_station_without_steering_is_an_unknown_client_that_cannot_get_out() -> None:
    st = state(world(steered_at=None, cpe1={M9: "cpe1-a1"}), "cpe1")
    [u] = st.users
    assert u.name == UNKNOWN_CLIENT + M9 and not u.authenticated and u.ip == LEASE9
    sw, nfs = fake(st)
    assert sw.trace(ip_packet("cpe1-a1", M9, GW_MAC, LEASE9, INET, dport=443), nfs).exits == []


def test_the_controllers_sighting_counts_and_the_agents_report_wins() -> None:
    w = world(steered_at=None)
    seen = World(records=w.records, ports=w.ports, seen={"cpe1": {M9: "cpe1-a1"}})
    assert [u.port for u in state(seen, "cpe1").users] == ["cpe1-a1"]
    both = World(records=w.records, ports={**w.ports, "cpe1": cpe_ports("cpe1",
                                                                        {M9: "cpe1-a2"})},
                 seen={"cpe1": {M9: "cpe1-a1"}})
    assert [u.port for u in state(both, "cpe1").users] == ["cpe1-a2"]


def test_a_lease_taken_by_a_steered_user_is_not_given_to_an_unknown_client() -> None:
    w = world(cpe1={M1: "cpe1-a1", M9: "cpe1-a2"})
    ports = w.ports["cpe1"].model_copy(update={"leases": {M9: IP1}})
    st = state(World(records=w.records, ports={**w.ports, "cpe1": ports}), "cpe1")
    unknown = [u for u in st.users if not u.authenticated]
    assert [(u.mac, u.ip) for u in unknown] == [(M9, None)]


def test_a_user_just_logged_in_is_served_on_the_pre_login_lease_until_renewal() -> None:
    """Issue #16: no reconnect after login. The CPE's lease for the user's MAC still shows
    the pre-login address: it passes, through the firewall, with the stable one. Once the
    device renewed (the lease shows the stable address), only the stable one passes."""
    pre = "10.90.16.23"
    w = world(cpe1={M1: "cpe1-a1"})
    ports = w.ports["cpe1"].model_copy(update={"leases": {M1: pre}})
    st = state(World(records=w.records, ports={**w.ports, "cpe1": ports}), "cpe1")
    [u] = st.users
    assert (u.ip, u.extra_ips) == (IP1, (pre,))
    sw, nfs = fake(st)
    for src in (IP1, pre):
        path = sw.trace(ip_packet("cpe1-a1", M1, GW_MAC, src, INET, dport=443), nfs).path
        assert path == [hop("cpe1").lan, "cpe1-up"]
    renewed = w.ports["cpe1"].model_copy(update={"leases": {M1: IP1}})
    st = state(World(records=w.records, ports={**w.ports, "cpe1": renewed}), "cpe1")
    assert st.users[0].extra_ips == ()
    sw, nfs = fake(st)
    assert sw.trace(ip_packet("cpe1-a1", M1, GW_MAC, pre, INET, dport=443), nfs).exits == []


def test_a_steered_user_on_no_access_port_is_left_out() -> None:
    assert state(world(), "cpe1").users == ()
    assert state(world(cpe1={M1: "cpe1-up"}), "cpe1").users == ()


# -- chain locality ---------------------------------------------------------------------------
def test_a_chain_through_another_nodes_nf_fails_closed() -> None:
    # Steered at cpe1, the firewall in the DC: no such chain yet, so the user is only an
    # unauthenticated client (the portal), never let out around their NF.
    st = state(world(nf_at="dc1", cpe1={M1: "cpe1-a1"}), "cpe1")
    [u] = st.users
    assert u.name == UNKNOWN_CLIENT + M1 and not u.authenticated
    sw, nfs = fake(st)
    assert sw.trace(ip_packet("cpe1-a1", M1, GW_MAC, IP1, INET, dport=443), nfs).exits == []


def test_an_nf_with_fewer_than_two_ports_has_no_hop_and_fails_closed() -> None:
    assert hop_of("x", ChainNf(node="cpe1", nf="x", ports=({"name": "lan"},))) is None
    w = world(cpe1={M1: "cpe1-a1"})
    one_port = {fw("cpe1"): ChainNf(node="cpe1", nf="firewall", ports=FW_PORTS[:1])}
    rec = SwitchingRecords(roles=w.records.roles, rules=w.records.rules,
                           sessions=w.records.sessions, nfs=one_port)
    [u] = state(World(records=rec, ports=w.ports), "cpe1").users
    assert not u.authenticated


def test_traffic_classes_split_the_chain() -> None:
    web = {"name": "web", "priority": 100, "ip_proto": 6, "remote_port": 80,
           "nfs": ["firewall"]}
    [u] = state(world(cpe1={M1: "cpe1-a1"}, classes={"user1": (web,)}), "cpe1").users
    assert u.chain == () and [(c.name, c.chain) for c in u.classifiers] == [
        ("web", (hop("cpe1"),))]


# -- the core ---------------------------------------------------------------------------------
def test_the_core_sends_the_user_down_the_link_to_their_cpe() -> None:
    st = state(world(cpe1={M1: "cpe1-a1"}), "core")
    assert st.role == "pe" and {"k-c1", "k-c2", "k-inet"} <= set(st.infra_ports)
    assert st.locations == (Location(user="user1", mac=M1, ip=IP1, port="k-c1"),)
    sw, nfs = fake(st)
    assert sw.trace(ip_packet("k-inet", GW_MAC, M1, INET, IP1), nfs).exits == ["k-c1"]


def test_unknown_node_has_no_state() -> None:
    assert switch_state(world(), "nowhere") is None


# -- anchoring: the user moved to cpe2, their NFs still at cpe1 -------------------------------
def moved(ready: bool) -> World:
    return world(session_at="cpe2", cpe2={M1: "cpe2-a1"}, ready=ready)


def test_mid_migration_the_old_cpe_anchors_the_user_through_their_nf() -> None:
    st = state(moved(False), "cpe1")
    assert st.users == ()
    [a] = st.anchored
    assert (a.name, a.mac, a.ip, a.chain) == ("user1", M1, IP1, (hop("cpe1"),))
    sw, nfs = fake(st)
    # upstream: from the uplink, across the firewall, back up the uplink
    assert sw.trace(ip_packet("cpe1-up", M1, GW_MAC, IP1, INET), nfs).path == [
        hop("cpe1").lan, "cpe1-up"]


def test_an_anchor_needs_the_user_on_an_access_port_where_they_are() -> None:
    assert state(world(session_at="cpe2"), "cpe1").anchored == ()


def test_mid_migration_the_core_diverts_the_user_through_the_anchor() -> None:
    st = state(moved(False), "core")
    assert st.locations == (Location(user="user1", mac=M1, ip=IP1, port="k-c2",
                                     anchor="k-c1"),)
    sw, nfs = fake(st)
    assert sw.trace(ip_packet("k-c2", M1, GW_MAC, IP1, INET), nfs).exits == ["k-c1"]
    assert sw.trace(ip_packet("k-inet", GW_MAC, M1, INET, IP1), nfs).exits == ["k-c1"]


def test_the_visited_cpe_lets_the_user_out_only_once_the_anchor_is_confirmed() -> None:
    before = state(moved(False), "cpe2")
    assert not any(u.authenticated for u in before.users)
    sw, nfs = fake(before)
    assert sw.trace(ip_packet("cpe2-a1", M1, GW_MAC, IP1, INET, dport=443), nfs).exits == []

    after = state(moved(True), "cpe2")
    [u] = after.users
    assert (u.name, u.port, u.authenticated, u.chain) == ("user1", "cpe2-a1", True, ())
    sw, nfs = fake(after)
    # out by the uplink, to the anchor's NFs (no NF of its own on the way)
    assert sw.trace(ip_packet("cpe2-a1", M1, GW_MAC, IP1, INET, dport=443), nfs).path == [
        "cpe2-up"]


def test_once_steered_at_the_visited_cpe_the_newest_rule_wins_and_no_anchor_remains() -> None:
    # The move completed: NFs at cpe2, steered last there (rules are newest first).
    rec = SwitchingRecords(
        roles=ROLES, sessions={"user1": "cpe2"},
        rules=(SteeredRule(user="user1", node="cpe2", mac=M1, ip=IP1, chain=(fw("cpe2"),)),
               SteeredRule(user="user1", node="cpe1", mac=M1, ip=IP1, chain=(fw("cpe1"),))),
        nfs={fw(n): ChainNf(node=n, nf="firewall", ports=FW_PORTS) for n in ("cpe1", "cpe2")})
    w = World(records=rec, ports={"cpe1": cpe_ports("cpe1", {}),
                                  "cpe2": cpe_ports("cpe2", {M1: "cpe2-a1"}),
                                  "core": CORE_PORTS})
    assert state(w, "core").locations == (Location(user="user1", mac=M1, ip=IP1,
                                                   port="k-c2"),)
    [u] = state(w, "cpe2").users
    assert u.authenticated and u.chain == (hop("cpe2"),)
    assert state(w, "cpe1").anchored == ()
