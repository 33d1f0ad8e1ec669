"""Issue #16, inputs 5 and 6 and the IPv6 rule, on the controller's pipeline (fake switch):
frames from a group source MAC die at the edge, nothing but ARP and IPv4 crosses a CPE, DHCP
from unknown stations is metered per access port, and one bad entry never keeps the rest of
a switch's flows out."""

from __future__ import annotations

from typing import Any

import pytest
from os_ken.ofproto import ofproto_v1_3
from os_ken.ofproto import ofproto_v1_3_parser as parser

from netfate.bus.messages import ClientSeen, SwitchSynced
from netfate.controller import pipeline as pl
from netfate.controller.app import ControllerApp
from netfate.controller.fake import FakeSwitch, ip_packet
from netfate.controller.flowmod import ETH_ARP, ETH_IPV4, Meter
from netfate.controller.flows import build
from netfate.controller.model import Client, Hop, Location, ServicesAttachment, SwitchState
from netfate.controller.ofmsg import from_stats, instructions
from netfate.counters import ENTRIES_SKIPPED, REGISTRY

from .test_controller_app import Bus, FakeDatapath, answer_stats, connect, ev

GROUP_SRC = "03:00:00:00:00:01"  # the frame: the I/G bit set
M1, M9 = "02:aa:00:00:00:01", "02:aa:00:00:00:09"
IP1, IP9 = "10.90.1.1", "10.90.1.9"
GW_MAC, INET = "02:bb:00:00:00:01", "10.255.0.1"
SVC = ServicesAttachment(port="svc", mac="02:5e:00:00:00:01", ip="10.90.0.2")
PORTS = {"a1": 1, "a2": 2, "up": 10, "svc": 20, "fw-l": 31, "fw-w": 32, "srv": 40}
FW = Hop(lan="fw-l", wan="fw-w", own_macs=("02:cc:00:00:00:01",))
USER = Client(name="user1", mac=M1, ip=IP1, port="a1", authenticated=True, chain=(FW,),
              idle_timeout=60)
GUEST = Client(name="~" + M9, mac=M9, ip=IP9, port="a2")


def cpe(*users: Client, dhcp_pps: int = 0, infra: tuple[str, ...] = ()) -> SwitchState:
    return SwitchState(node="cpe1", role="cpe", uplink="up", access_ports=("a1", "a2"),
                       infra_ports=infra, services=SVC, users=users, dhcp_pps=dhcp_pps)


def switch(state: SwitchState) -> FakeSwitch:
    fs = build(state, PORTS)
    assert not fs.skipped, fs.skipped
    sw = FakeSwitch(PORTS)
    sw.apply(fs.flows)
    return sw


def dhcp(port: str, mac: str) -> dict[str, Any]:
    return ip_packet(port, mac, "ff:ff:ff:ff:ff:ff", "0.0.0.0", "255.255.255.255", proto=17,
                     sport=68, dport=67)


# -- input 5: a group source MAC ------------------------------------------------------------
def test_dhcp_from_a_group_source_mac_is_dropped_and_never_reaches_the_controller() -> None:
    sw = switch(cpe(USER, GUEST))
    assert [p for p, _ in sw.process(dhcp("a2", M9))] == ["svc"]  # a known client's DHCP
    assert {p for p, _ in sw.process(dhcp("a2", "02:aa:00:00:00:77"))} == {"svc", "controller"}
    for port in PORTS:
        for src in (GROUP_SRC, "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "33:33:00:00:00:01"):
            assert sw.process(dhcp(port, src)) == [], (port, src)
            arp = {"in_port": port, "eth_src": src, "eth_dst": "ff:ff:ff:ff:ff:ff",
                   "eth_type": ETH_ARP, "arp_op": 1, "arp_sha": src, "arp_spa": "0.0.0.0",
                   "arp_tpa": IP1}
            assert sw.process(arp) == [], (port, src)


def test_the_core_drops_group_source_macs_too() -> None:
    core = SwitchState(node="core", role="pe", infra_ports=("k1", "k2"),
                       locations=(Location(user="user1", mac=M1, ip=IP1, port="k1"),))
    ports = {"k1": 1, "k2": 2}
    fs = build(core, ports)
    sw = FakeSwitch(ports)
    sw.apply(fs.flows)
    pkt = ip_packet("k2", GROUP_SRC, M1, IP9, IP1)
    assert sw.process(pkt) == []
    assert [p for p, _ in sw.process(ip_packet("k2", M9, M1, IP9, IP1))] == ["k1"]


def test_the_controller_ignores_a_group_source_packet_in(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    app = ControllerApp()
    app.bus = Bus()
    dp = FakeDatapath("cpe1", PORTS)
    app.apply_desired(cpe(USER).model_copy(update={"generation": 1}))
    connect(app, dp)
    before = REGISTRY.value(ENTRIES_SKIPPED, where="controller-packet-in", node="cpe1")
    frame = bytes.fromhex("ffffffffffff" "030000000001" "0800") + bytes(50)
    app._packet_in(ev(msg=ev(datapath=dp, data=frame, match={"in_port": 2})))
    assert app.bus.of(ClientSeen) == []
    assert REGISTRY.value(ENTRIES_SKIPPED, where="controller-packet-in",
                          node="cpe1") == before + 1


# -- IPv6 (and every EtherType but ARP and IPv4) never crosses a CPE ---------------------------
V6_ALL_NODES, V6_ALL_ROUTERS = "33:33:00:00:00:01", "33:33:00:00:00:02"


@pytest.mark.parametrize("eth_type", [0x86DD, 0x88CC, 0x8100, 0x88E5, 0x8035, 0x0842])
def test_nothing_but_arp_and_ipv4_crosses_a_cpe(eth_type: int) -> None:
    sw = switch(cpe(USER, GUEST, infra=("srv",)))
    macs = [M1, M9, SVC.mac, GW_MAC, "02:cc:00:00:00:01", V6_ALL_NODES, V6_ALL_ROUTERS,
            "ff:ff:ff:ff:ff:ff"]
    for port in PORTS:
        for src in (M1, M9, SVC.mac, GW_MAC, "02:cc:00:00:00:01"):
            for dst in macs:
                pkt = {"in_port": port, "eth_src": src, "eth_dst": dst, "eth_type": eth_type}
                assert sw.process(pkt) == [], (port, src, dst)


def test_every_cpe_flow_that_forwards_names_arp_or_ipv4() -> None:
    """The allow-list, flow by flow: a table-0 flow that outputs or goes on matches ARP or
    IPv4 (or a group source, which it drops); no TS rules here."""
    fs = build(cpe(USER, GUEST, infra=("srv",), dhcp_pps=10), PORTS)
    for f in fs.flows:
        if f.table_id != pl.INGRESS or f.priority == pl.P_MISS:
            continue
        if not f.outputs and f.goto_table is None:
            continue  # a drop
        assert f.match.get("eth_type") in (ETH_ARP, ETH_IPV4), f


def test_ipv4_still_flows_for_the_user() -> None:
    sw = switch(cpe(USER, GUEST))
    t = sw.trace(ip_packet("a1", M1, GW_MAC, IP1, INET), {"fw-l": "fw-w", "fw-w": "fw-l"})
    assert t.exits == ["up"]


# -- input 6: DHCP metered per access port -----------------------------------------------------
def test_dhcp_from_unknown_stations_is_metered_per_access_port() -> None:
    fs = build(cpe(USER, dhcp_pps=10), PORTS)
    new = [f for f in fs.flows if f.priority == pl.P_DHCP_NEW and "udp_dst" in f.match]
    assert {(f.match["in_port"], f.meter_id) for f in new} == {(1, 1), (2, 2)}
    assert fs.meters == [Meter(1, 10, 10), Meter(2, 10, 10)]
    known = [f for f in fs.flows if f.priority == pl.P_DHCP_KNOWN]
    assert known and all(f.meter_id is None for f in known)
    # The meter instruction survives encoding and a flow-stats round trip (sync compares).
    mod = parser.OFPFlowMod(None, instructions=instructions(new[0]))
    assert isinstance(mod.instructions[0], parser.OFPInstructionMeter)
    assert from_stats(_as_stats(new[0])).meter_id == new[0].meter_id
    assert all(f.meter_id is None for f in build(cpe(USER), PORTS).flows)


def _as_stats(f: Any) -> Any:
    from netfate.controller.fake import as_reported
    return as_reported(f)


def test_the_controller_installs_meters_before_the_flows_once() -> None:
    app = ControllerApp()
    app.bus = Bus()
    dp = FakeDatapath("cpe1", PORTS)
    app.apply_desired(cpe(USER, dhcp_pps=10).model_copy(update={"generation": 1}))
    connect(app, dp)
    answer_stats(app, dp)
    kinds = [type(m).__name__ for m in dp.sent]
    first_flow = kinds.index("OFPFlowMod")
    meters = [m for m in dp.sent if isinstance(m, parser.OFPMeterMod)]
    assert len(meters) == 4 and kinds.index("OFPMeterMod") < first_flow  # ADD+MODIFY x 2
    assert {m.meter_id for m in meters} == {1, 2}
    assert all(m.bands[0].rate == 10 for m in meters)
    dp.sent.clear()
    app.apply_desired(cpe(USER, GUEST, dhcp_pps=10).model_copy(update={"generation": 2}))
    answer_stats(app, dp)
    assert not [m for m in dp.sent if isinstance(m, parser.OFPMeterMod)]
    # Metering off (or its ports gone): the meters are deleted, after the flows naming them.
    dp.sent.clear()
    app.apply_desired(cpe(USER, GUEST).model_copy(update={"generation": 3}))
    answer_stats(app, dp)
    kinds = [type(m).__name__ for m in dp.sent]
    gone = [m for m in dp.sent if isinstance(m, parser.OFPMeterMod)]
    assert {m.meter_id for m in gone} == {1, 2}
    assert all(m.command == ofproto_v1_3.OFPMC_DELETE for m in gone)
    assert kinds.index("OFPMeterMod") > max(i for i, k in enumerate(kinds) if k == "OFPFlowMod")


# -- defence in depth: one bad entry never stops the rest -------------------------------------
def test_a_unit_that_cannot_be_expressed_is_skipped_not_fatal(monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    real = pl.user_tag
    monkeypatch.setattr(pl, "user_tag", lambda n: 7 if n in ("user1", "~" + M9) else real(n))
    fs = build(cpe(USER, GUEST), PORTS)
    assert any("same tag" in s for s in fs.skipped)
    assert any(f.cookie == pl.cookie(pl.Kind.USER, "user1") for f in fs.flows)


def test_the_controller_reports_what_it_skipped_and_syncs_the_rest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import netfate.controller.flows_remote as flows_remote

    def boom(*_: Any) -> Any:
        raise ValueError("cannot express")

    monkeypatch.setattr(flows_remote, "anchored", boom)
    from netfate.controller.model import Anchored
    st = cpe(USER).model_copy(update={"generation": 3, "anchored": (
        Anchored(name="user7", mac="02:aa:00:00:00:07", ip="10.90.1.7", chain=(FW,)),)})
    app = ControllerApp()
    app.bus = Bus()
    dp = FakeDatapath("cpe1", PORTS)
    app.apply_desired(st)
    connect(app, dp)
    answer_stats(app, dp)
    assert any(isinstance(m, parser.OFPFlowMod) for m in dp.sent)
    for b in [m for m in dp.sent if isinstance(m, parser.OFPBarrierRequest)]:
        app._barrier_reply(ev(msg=ev(datapath=dp, xid=b.xid)))
    (rep,) = app.bus.of(SwitchSynced)
    assert rep.generation == 3 and any("user7" in s for s in rep.skipped)


# -- the controller salvages a state one entry spoils -------------------------------------------
def test_a_published_state_with_bad_entries_is_salvaged_entry_by_entry() -> None:
    import json
    import time as _time

    from netfate.controller.salvage import salvage

    raw = json.loads(cpe(USER, GUEST).model_dump_json())
    good_users = list(raw["users"])
    raw["users"] = [
        *good_users,
        {**good_users[1], "name": "~03:00:00:00:00:01", "mac": GROUP_SRC, "ip": None},
        {**good_users[1], "name": "~x", "mac": "02:aa:00:00:00:10", "ip": "999.1.1.1"},
        {**good_users[1], "name": "~dup", "mac": "02:aa:00:00:00:11", "ip": IP1},  # taken
        {**good_users[1], "name": "~guest", "mac": "02:aa:00:00:00:12", "ip": None},
    ]
    st, left_out = salvage(json.dumps(raw))
    assert st is not None
    assert [u.name for u in st.users] == ["user1", "~" + M9, "~guest"]
    assert len(left_out) == 3 and any("users[4]" in x for x in left_out)
    assert salvage(b"{not json")[0] is None
    assert salvage(json.dumps({**raw, "role": "router"}))[0] is None
    # Many entries, the bad one last: still fast (each trial checks only the cross-entry rules).
    many = [{**good_users[1], "name": f"~{i}", "mac": f"02:dd:00:00:{i >> 8:02x}:{i & 255:02x}",
             "ip": None} for i in range(400)]
    raw["users"] = [*good_users, *many, {**good_users[1], "mac": GROUP_SRC}]
    t0 = _time.monotonic()
    st, left_out = salvage(json.dumps(raw))
    assert st is not None and len(st.users) == 402 and len(left_out) == 1
    assert _time.monotonic() - t0 < 20


def test_the_controllers_bus_takes_a_salvaged_state() -> None:
    import asyncio
    import json

    from netfate.controller.bus import BusBridge

    got: list[SwitchState] = []
    bridge = BusBridge("nats://127.0.0.1:1", got.append, list)
    raw = json.loads(cpe(USER).model_dump_json())
    raw["users"].append({**raw["users"][0], "name": "bad", "mac": GROUP_SRC, "ip": None})
    msg = type("Msg", (), {"data": json.dumps(raw).encode(),
                           "subject": "netfate.controller.cpe1.desired"})()
    asyncio.run(bridge._on_msg(msg))  # type: ignore[arg-type]
    assert [u.name for u in got[0].users] == ["user1"]
