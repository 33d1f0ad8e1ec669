"""The os-ken app's handlers, fed fake datapaths and events (no switch, no os-ken hub)."""

from __future__ import annotations

import types
from typing import Any

import pytest
from os_ken.controller.handler import DEAD_DISPATCHER, MAIN_DISPATCHER
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser
from pydantic import BaseModel

from netfate.bus import subjects
from netfate.bus.messages import ClientSeen, SwitchSynced, UserIdleReport
from netfate.controller import pipeline as pl
from netfate.controller.app import ControllerApp, datapath_id, ovs_datapath_id
from netfate.controller.fake import FakeSwitch
from netfate.controller.model import Client, Hop, ServicesAttachment, SwitchState
from netfate.controller.ofmsg import from_stats

PORTS = {"a1": 1, "a2": 2, "up": 10, "svc": 20, "fw1-l": 31, "fw1-w": 32}
U1 = Client(name="user1", mac="02:aa:00:00:00:01", ip="10.90.1.1", port="a1",
          authenticated=True, chain=(Hop(lan="fw1-l", wan="fw1-w"),), idle_timeout=60)


def state(*users: Client, generation: int = 1) -> SwitchState:
    return SwitchState(
        node="cpe1", role="cpe", generation=generation, uplink="up", access_ports=("a1", "a2"),
        services=ServicesAttachment(port="svc", mac="02:5e:00:00:00:01", ip="10.90.0.2"),
        users=users,
    )


class FakeDatapath:
    """What the app uses of os-ken's Datapath: it also applies flow-mods to a FakeSwitch."""

    ofproto = ofp
    ofproto_parser = parser

    def __init__(self, node: str, ports: dict[str, int]) -> None:
        self.id = datapath_id(node)
        self.xid = 0
        self.sent: list[Any] = []
        self.switch = FakeSwitch(ports)
        self.ports = {n: types.SimpleNamespace(name=k.encode(), port_no=n)
                      for k, n in ports.items()}

    def set_xid(self, msg: Any) -> int:
        self.xid += 1
        msg.set_xid(self.xid)
        return self.xid

    def send_msg(self, msg: Any) -> None:
        if msg.xid is None:
            self.set_xid(msg)
        msg.serialize()  # what os-ken does: anything it could not encode fails here
        self.sent.append(msg)
        if isinstance(msg, parser.OFPFlowMod):
            f = from_stats(msg)  # a flow-mod has every field a flow-stats entry has
            if msg.command == ofp.OFPFC_ADD:
                self.switch.apply([f])
            elif msg.command == ofp.OFPFC_DELETE_STRICT:
                self.switch.delete([f])

    def take(self, kind: type) -> list[Any]:
        out = [m for m in self.sent if isinstance(m, kind)]
        self.sent = [m for m in self.sent if not isinstance(m, kind)]
        return out


class Bus:
    def __init__(self) -> None:
        self.messages: list[tuple[str, BaseModel]] = []

    def publish(self, subject: str, msg: BaseModel) -> None:
        self.messages.append((subject, msg))

    def of(self, kind: type) -> list[Any]:
        return [m for _, m in self.messages if isinstance(m, kind)]


def ev(**kw: Any) -> Any:
    return types.SimpleNamespace(**kw)


@pytest.fixture
def app() -> ControllerApp:
    a = ControllerApp()
    a.bus = Bus()
    return a


def connect(app: ControllerApp, dp: FakeDatapath) -> None:
    app._state_change(ev(datapath=dp, state=MAIN_DISPATCHER))


def answer_stats(app: ControllerApp, dp: FakeDatapath) -> bool:
    """Answer the app's pending flow-stats request with the switch's flows, in two parts;
    whether it had one (a sync diffs against the table it knows, when it knows it)."""
    reqs = dp.take(parser.OFPFlowStatsRequest)
    if not reqs:
        return False
    (req,) = reqs
    body = dp.switch.flow_stats()
    half = len(body) // 2
    app._flow_stats(ev(msg=ev(datapath=dp, xid=req.xid, flags=ofp.OFPMPF_REPLY_MORE,
                              body=body[:half])))
    app._flow_stats(ev(msg=ev(datapath=dp, xid=req.xid, flags=0, body=body[half:])))
    return True


def answer_barriers(app: ControllerApp, dp: FakeDatapath) -> None:
    for b in dp.take(parser.OFPBarrierRequest):
        app._barrier_reply(ev(msg=ev(datapath=dp, xid=b.xid)))


def test_datapath_ids_are_stable_distinct_and_fit_ovs() -> None:
    assert datapath_id("cpe1") == datapath_id("cpe1") != datapath_id("cpe2")
    assert datapath_id("cpe1") >> 48 == 0x4E46
    assert len(ovs_datapath_id("cpe1")) == 16 and int(ovs_datapath_id("cpe1"), 16) == \
        datapath_id("cpe1")


def test_a_switch_without_desired_state_is_left_alone(app: ControllerApp) -> None:
    dp = FakeDatapath("cpe1", PORTS)
    connect(app, dp)
    assert dp.sent == []


def test_connect_installs_the_desired_flows_and_reports_the_generation(
    app: ControllerApp,
) -> None:
    app.apply_desired(state(U1, generation=7))
    dp = FakeDatapath("cpe1", PORTS)
    connect(app, dp)
    answer_stats(app, dp)
    mods = dp.take(parser.OFPFlowMod)
    assert mods and all(m.command == ofp.OFPFC_ADD for m in mods)
    from netfate.controller.flows import build

    assert len(dp.switch.flows) == len(build(state(U1), PORTS).flows)
    assert app.bus.of(SwitchSynced) == []  # not before the switch confirms
    answer_barriers(app, dp)
    (rep,) = app.bus.of(SwitchSynced)
    assert rep.node == "cpe1" and rep.generation == 7 and rep.added == len(mods)
    assert rep.deleted == 0 and rep.errors == []


def test_a_controller_restart_sends_no_flow_mods(app: ControllerApp) -> None:
    app.apply_desired(state(U1))
    dp = FakeDatapath("cpe1", PORTS)
    connect(app, dp)
    answer_stats(app, dp)
    answer_barriers(app, dp)
    dp.sent.clear()
    fresh = ControllerApp()
    fresh.bus = Bus()
    connect(fresh, dp)  # the switch reconnects to a new controller process
    fresh.apply_desired(state(U1))
    answer_stats(fresh, dp)
    assert dp.take(parser.OFPFlowMod) == []
    (rep,) = fresh.bus.of(SwitchSynced)
    assert rep.added == rep.deleted == 0 and rep.unchanged == len(dp.switch.flows)


def test_a_state_change_adds_before_it_deletes(app: ControllerApp) -> None:
    app.apply_desired(state(U1))
    dp = FakeDatapath("cpe1", PORTS)
    connect(app, dp)
    answer_stats(app, dp)
    answer_barriers(app, dp)
    dp.sent.clear()
    moved = U1.model_copy(update={"port": "a2"})
    app.apply_desired(state(moved, generation=2))
    assert not answer_stats(app, dp)  # the table it made is known: no read
    kinds = [("add" if m.command == ofp.OFPFC_ADD else "del") if isinstance(m, parser.OFPFlowMod)
             else "barrier" for m in dp.sent if not isinstance(m, parser.OFPFlowStatsRequest)]
    assert kinds.index("barrier") > max(i for i, k in enumerate(kinds) if k == "add")
    assert min(i for i, k in enumerate(kinds) if k == "del") > kinds.index("barrier")
    assert kinds[-1] == "barrier"


def test_updates_during_a_sync_are_coalesced_into_one_more(app: ControllerApp) -> None:
    dp = FakeDatapath("cpe1", PORTS)
    app.apply_desired(state())
    connect(app, dp)
    app.apply_desired(state(U1, generation=2))
    app.apply_desired(state(U1, generation=3))
    assert len([m for m in dp.sent if isinstance(m, parser.OFPFlowStatsRequest)]) == 1
    answer_stats(app, dp)  # the first sync, then one more for the latest state, on the
    assert not answer_stats(app, dp)  # table the first made (no second read)
    answer_barriers(app, dp)
    assert app.bus.of(SwitchSynced)[-1].generation == 3
    assert any(f.cookie == pl.cookie(pl.Kind.IDLE, "user1") for f in dp.switch.flows.values())


def test_a_new_port_resyncs_and_fills_in_what_was_skipped(app: ControllerApp) -> None:
    ports = {k: v for k, v in PORTS.items() if k != "fw1-l"}
    dp = FakeDatapath("cpe1", ports)
    app.apply_desired(state(U1))
    connect(app, dp)
    answer_stats(app, dp)
    answer_barriers(app, dp)
    assert any("fw1-l" in s for s in app.bus.of(SwitchSynced)[-1].skipped)
    dp.switch.ofports = PORTS
    desc = types.SimpleNamespace(name=b"fw1-l", port_no=31)
    app._port_status(ev(msg=ev(datapath=dp, reason=ofp.OFPPR_ADD, desc=desc)))
    answer_stats(app, dp)
    answer_barriers(app, dp)
    assert app.bus.of(SwitchSynced)[-1].skipped == []
    # a link-state change (same name and number) does not cost a sync
    app._port_status(ev(msg=ev(datapath=dp, reason=ofp.OFPPR_MODIFY, desc=desc)))
    assert dp.take(parser.OFPFlowStatsRequest) == []


def test_idle_flow_removal_is_reported_and_the_flow_restored(app: ControllerApp) -> None:
    dp = FakeDatapath("cpe1", PORTS)
    app.apply_desired(state(U1))
    connect(app, dp)
    answer_stats(app, dp)
    answer_barriers(app, dp)
    idle = pl.cookie(pl.Kind.IDLE, "user1")
    (flow,) = [f for f in dp.switch.flows.values() if f.cookie == idle]
    dp.switch.delete([flow])
    app._flow_removed(ev(msg=ev(datapath=dp, reason=ofp.OFPRR_IDLE_TIMEOUT, cookie=idle,
                                idle_timeout=60)))
    (rep,) = app.bus.of(UserIdleReport)
    assert (rep.node, rep.user, rep.mac) == ("cpe1", "user1", U1.mac)
    assert (subjects.CONTROLLER_IDLE, rep) in app.bus.messages
    # Level-triggered: still desired, so it is put back, after a read of the table (the
    # switch removed a flow on its own).
    assert answer_stats(app, dp)
    assert any(f.cookie == idle for f in dp.switch.flows.values())


def test_other_flow_removals_are_not_idleness(app: ControllerApp) -> None:
    dp = FakeDatapath("cpe1", PORTS)
    app.apply_desired(state(U1))
    connect(app, dp)
    idle = pl.cookie(pl.Kind.IDLE, "user1")
    app._flow_removed(ev(msg=ev(datapath=dp, reason=ofp.OFPRR_DELETE, cookie=idle,
                                idle_timeout=60)))
    other = pl.cookie(pl.Kind.USER, "user1")
    app._flow_removed(ev(msg=ev(datapath=dp, reason=ofp.OFPRR_IDLE_TIMEOUT, cookie=other,
                                idle_timeout=60)))
    assert app.bus.of(UserIdleReport) == []


def test_dhcp_from_a_new_mac_is_reported_once(app: ControllerApp) -> None:
    dp = FakeDatapath("cpe1", PORTS)
    app.apply_desired(state())
    connect(app, dp)
    frame = bytes.fromhex("ffffffffffff" "02aa00000009" "0800") + bytes(50)
    for _ in range(3):
        app._packet_in(ev(msg=ev(datapath=dp, data=frame, match={"in_port": 2})))
    app._packet_in(ev(msg=ev(datapath=dp, data=frame, match={"in_port": 10})))  # not access
    (seen,) = app.bus.of(ClientSeen)
    assert (seen.node, seen.mac, seen.port) == ("cpe1", "02:aa:00:00:00:09", "a2")


def test_switch_errors_are_reported_with_the_sync(app: ControllerApp) -> None:
    dp = FakeDatapath("cpe1", PORTS)
    app.apply_desired(state(U1))
    connect(app, dp)
    answer_stats(app, dp)
    bad = next(m for m in dp.sent if isinstance(m, parser.OFPFlowMod))
    app._error(ev(msg=ev(datapath=dp, xid=bad.xid, type=4, code=9)))
    answer_barriers(app, dp)
    (rep,) = app.bus.of(SwitchSynced)
    assert rep.errors and "type 4 code 9" in rep.errors[0]


def test_a_disconnected_switch_is_forgotten_until_it_returns(app: ControllerApp) -> None:
    dp = FakeDatapath("cpe1", PORTS)
    app.apply_desired(state(U1))
    connect(app, dp)
    app._state_change(ev(datapath=dp, state=DEAD_DISPATCHER))
    assert app.switches == {}
    app.apply_desired(state(U1, generation=2))  # nothing to send to
    connect(app, dp)
    assert len(dp.take(parser.OFPFlowStatsRequest)) == 2


def test_installed_flows_behave_on_the_switch(app: ControllerApp) -> None:
    """End to end through os-ken's encoder: the flows the app sent still steer traffic."""
    from netfate.controller.fake import ip_packet

    dp = FakeDatapath("cpe1", PORTS)
    app.apply_desired(state(U1))
    connect(app, dp)
    answer_stats(app, dp)
    pkt = ip_packet("a1", U1.mac, "02:bb:00:00:00:01", "10.90.1.1", "10.255.0.1")
    assert dp.switch.trace(pkt, {"fw1-l": "fw1-w"}).path == ["fw1-l", "up"]


def synced_at(app: ControllerApp, dp: FakeDatapath, gen: int) -> bool:
    """Sync the state of generation `gen` (U1 on port a1 if odd, a2 if even); whether the
    sync read the switch's table."""
    user = U1 if gen % 2 else U1.model_copy(update={"port": "a2"})
    app.apply_desired(state(user, generation=gen))
    read = answer_stats(app, dp)
    answer_barriers(app, dp)
    assert app.bus.of(SwitchSynced)[-1].generation == gen
    return read


def connected(app: ControllerApp) -> FakeDatapath:
    dp = FakeDatapath("cpe1", PORTS)
    connect(app, dp)
    assert synced_at(app, dp, 1)  # a new connection reads the table
    dp.sent.clear()
    return dp


def same_table(app: ControllerApp, dp: FakeDatapath) -> None:
    """The switch holds what a sync from a fresh read would leave: nothing to add or delete."""
    fresh = ControllerApp()
    fresh.bus = Bus()
    fresh.apply_desired(app.desired["cpe1"])
    connect(fresh, dp)
    answer_stats(fresh, dp)
    (rep,) = fresh.bus.of(SwitchSynced)
    assert rep.added == rep.deleted == 0


def test_a_sync_diffs_against_the_table_it_made_without_reading_it(
        app: ControllerApp) -> None:
    dp = connected(app)
    for gen in range(2, 6):
        assert not synced_at(app, dp, gen)
        same_table(app, dp)
    rep = app.bus.of(SwitchSynced)[-1]
    assert rep.added > 0 and rep.deleted > 0 and rep.errors == []


def test_a_refused_flow_mod_makes_the_next_sync_read_the_table(app: ControllerApp) -> None:
    dp = connected(app)
    app.apply_desired(state(U1.model_copy(update={"port": "a2"}), generation=2))
    bad = next(m for m in dp.sent if isinstance(m, parser.OFPFlowMod)
               and m.command == ofp.OFPFC_ADD)
    dp.switch.delete([from_stats(bad)])  # as if the switch had refused it
    app._error(ev(msg=ev(datapath=dp, xid=bad.xid, type=4, code=9)))
    answer_barriers(app, dp)
    assert app.bus.of(SwitchSynced)[-1].errors
    # the same state again: the read finds the flow missing and adds it
    app.apply_desired(state(U1.model_copy(update={"port": "a2"}), generation=3))
    assert answer_stats(app, dp)
    assert dp.switch.flows and any(from_stats(m) == from_stats(bad)
                                   for m in dp.take(parser.OFPFlowMod))


def test_an_error_for_an_earlier_sync_still_drops_the_view(app: ControllerApp) -> None:
    """Two syncs before any barrier is answered: an error for the first one's flow-mod,
    arriving after the second was sent, still means the table is not what was expected."""
    dp = connected(app)
    app.apply_desired(state(U1.model_copy(update={"port": "a2"}), generation=2))
    first = next(m for m in dp.sent if isinstance(m, parser.OFPFlowMod))
    app.apply_desired(state(U1, generation=3))
    app._error(ev(msg=ev(datapath=dp, xid=first.xid, type=4, code=9)))
    answer_barriers(app, dp)
    assert synced_at(app, dp, 4)


def test_the_view_is_read_again_when_it_may_be_wrong(app: ControllerApp) -> None:
    dp = connected(app)
    # a port deleted
    desc = types.SimpleNamespace(name=b"fw1-w", port_no=32)
    app._port_status(ev(msg=ev(datapath=dp, reason=ofp.OFPPR_DELETE, desc=desc)))
    assert answer_stats(app, dp)
    answer_barriers(app, dp)
    app._port_status(ev(msg=ev(datapath=dp, reason=ofp.OFPPR_ADD, desc=desc)))
    assert not answer_stats(app, dp)  # a port added removes no flow
    answer_barriers(app, dp)
    # a flow the switch removed (a hard timeout), not our delete
    app._flow_removed(ev(msg=ev(datapath=dp, reason=ofp.OFPRR_HARD_TIMEOUT, cookie=0,
                                idle_timeout=0)))
    assert synced_at(app, dp, 2)
    app._flow_removed(ev(msg=ev(datapath=dp, reason=ofp.OFPRR_DELETE, cookie=0,
                                idle_timeout=0)))
    assert not synced_at(app, dp, 3)


def test_a_flow_deleted_by_hand_is_restored_once_the_view_is_old(
        app: ControllerApp, monkeypatch: pytest.MonkeyPatch) -> None:
    import netfate.controller.app as app_module

    dp = connected(app)
    lost = next(iter(dp.switch.flows.values()))
    dp.switch.delete([lost])  # `ovs-ofctl del-flows` by hand: the controller is not told
    now = app_module.time.monotonic()
    monkeypatch.setattr(app_module.time, "monotonic", lambda: now + 31)
    assert synced_at(app, dp, 3)  # the view is older than its TTL: read, and put back
    assert app.bus.of(SwitchSynced)[-1].added >= 1
    same_table(app, dp)


def test_an_unanswered_read_does_not_make_an_old_view_fresh(
        app: ControllerApp, monkeypatch: pytest.MonkeyPatch) -> None:
    import netfate.controller.app as app_module

    dp = connected(app)
    now = app_module.time.monotonic()
    monkeypatch.setattr(app_module.time, "monotonic", lambda: now + 31)
    app.apply_desired(state(U1, generation=2))  # the view is old: a read is asked for...
    assert dp.take(parser.OFPFlowStatsRequest)  # ...and never answered
    monkeypatch.setattr(app_module.time, "monotonic", lambda: now + 31 + 11)
    app.apply_desired(state(U1, generation=3))  # past STATS_TIMEOUT: read again, not trusted
    assert dp.take(parser.OFPFlowStatsRequest)


def test_the_same_state_again_before_the_barrier_is_confirmed_by_that_barrier(
        app: ControllerApp) -> None:
    """A state republished under a new generation (the orchestrator's publish-all after a
    hello) while the switch has not answered the barrier of the previous one: one report,
    of the newest generation, once the barrier is answered; never the older one after it
    (the orchestrator read that as the switch going back a generation, CI 2026-12-05)."""
    dp = connected(app)
    moved = U1.model_copy(update={"port": "a2"})
    app.apply_desired(state(moved, generation=2))  # flow-mods and a barrier, unanswered
    app.apply_desired(state(moved, generation=3))  # nothing to send: same flows
    assert app.bus.of(SwitchSynced)[-1].generation == 1  # not confirmed before the barrier
    answer_barriers(app, dp)
    reports = app.bus.of(SwitchSynced)
    assert [r.generation for r in reports][-1] == 3 and 2 not in [r.generation for r in reports]
    assert reports[-1].added > 0  # what the barrier confirmed: generation 2's flow-mods
    same_table(app, dp)
