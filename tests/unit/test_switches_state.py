"""Each switch's desired state, built by the orchestrator from the database (one repository
read) and the ports the agents report: steered users, unknown stations, the core's locations,
and mid-migration anchoring (make-before-break). The decisions themselves are tested without
a database in test_switch_state.py; these check the read and the publisher around them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from netfate import catalogue, naming
from netfate.bundle import inspect_bundle
from netfate.bus.messages import DatapathSettled, ServicesPort, SwitchPorts, SwitchSynced
from netfate.controller.model import Hop, Location, SwitchState
from netfate.db import Database, repo, sqlite_url
from netfate.orchestrator.switches import Switches

M1, M9 = "02:aa:00:00:00:01", "02:aa:00:00:00:09"
IP1, LEASE9 = "10.90.1.1", "10.90.1.9"
IID = "cpe1-user1-firewall"
FW = Hop(lan=naming.nf_port(IID, "lan"), wan=naming.nf_port(IID, "wan"))


@pytest.fixture
def db(tmp_path) -> Iterator[Database]:
    d = Database.create(sqlite_url(tmp_path))
    data = catalogue.bundle_bytes("firewall")
    desc, _ = inspect_bundle(data)
    with d.session() as s:
        for name, role in (("cpe1", "cpe"), ("cpe2", "cpe"), ("core", "pe")):
            repo.upsert_node(s, name, role=role)
        repo.create_user(s, "user1", "Pw-user1-long-enough")
        b = repo.add_bundle(s, data, name=desc.name, version=desc.version,
                            descriptor=desc.model_dump(mode="json", by_alias=True))
        inst = repo.upsert_instance(s, node="cpe1", owner="user1", nf_name="firewall",
                                    bundle_sha256=b.sha256, flavour="native")
        assert inst.id == IID
    yield d
    d.dispose()


def cpe_ports(node: str, stations: dict[str, str]) -> SwitchPorts:
    return SwitchPorts(uplink=f"{node}-up", access=[f"{node}-a1", f"{node}-a2"],
                       links={f"{node}-up": "core"}, stations=stations,
                       leases={M9: LEASE9},
                       services=ServicesPort(port=f"{node}-svc", mac="02:5e:00:00:00:01",
                                             ip="10.90.0.2"))


CORE_PORTS = SwitchPorts(infra=["k-c1", "k-c2", "k-inet"],
                         links={"k-c1": "cpe1", "k-c2": "cpe2"})


def switches(db: Database, cpe1: dict[str, str], cpe2: dict[str, str]) -> Switches:
    sw = Switches(db, nc=None)
    sw.set_ports("cpe1", cpe_ports("cpe1", cpe1))
    sw.set_ports("cpe2", cpe_ports("cpe2", cpe2))
    sw.set_ports("core", CORE_PORTS)
    return sw


def steer_and_login(db: Database, session_at: str = "cpe1") -> None:
    with db.session() as s:
        repo.add_session(s, user="user1", node=session_at, mac=M1, ip=IP1)
        repo.set_steering(s, user="user1", node="cpe1", chain=[IID], mac=M1, ip=IP1)


def state(sw: Switches, node: str) -> SwitchState:
    st = asyncio.run(sw.state_for(node))
    assert st is not None
    return st


def test_a_steered_user_on_a_station_port_is_authenticated_with_its_chain(db: Database) -> None:
    steer_and_login(db)
    st = state(switches(db, {M1: "cpe1-a2"}, {}), "cpe1")
    [u] = st.users
    assert (u.name, u.mac, u.ip, u.port) == ("user1", M1, IP1, "cpe1-a2")
    assert u.authenticated and u.chain == (FW,)
    assert st.uplink == "cpe1-up" and st.services is not None and not st.anchored


def test_a_station_without_steering_is_an_unauthenticated_client(db: Database) -> None:
    st = state(switches(db, {M9: "cpe1-a1"}, {}), "cpe1")
    [u] = st.users
    assert u.name.startswith("~") and u.mac == M9 and u.port == "cpe1-a1"
    assert not u.authenticated and u.ip == LEASE9


def test_a_steered_user_on_no_access_port_is_left_out(db: Database) -> None:
    steer_and_login(db)
    assert state(switches(db, {}, {}), "cpe1").users == ()
    # a station reported on a port that is not an access port does not count either
    assert state(switches(db, {M1: "cpe1-up"}, {}), "cpe1").users == ()


def test_the_core_sends_the_user_down_the_link_to_their_cpe(db: Database) -> None:
    steer_and_login(db)
    st = state(switches(db, {M1: "cpe1-a1"}, {}), "core")
    assert st.role == "pe"
    assert st.locations == (Location(user="user1", mac=M1, ip=IP1, port="k-c1"),)
    assert {"k-c1", "k-c2", "k-inet"} <= set(st.infra_ports)


def test_unknown_node_has_no_state(db: Database) -> None:
    assert asyncio.run(switches(db, {}, {}).state_for("nowhere")) is None


def test_mid_migration_anchors_at_the_old_cpe_and_lets_out_only_once_the_core_is_in(
        db: Database) -> None:
    # The user logged in at cpe2; their NFs (newest steering) are still at cpe1.
    steer_and_login(db, session_at="cpe2")
    sw = switches(db, {}, {M1: "cpe2-a1"})

    old = state(sw, "cpe1")
    assert old.users == ()
    [a] = old.anchored
    assert (a.name, a.mac, a.ip, a.chain) == ("user1", M1, IP1, (FW,))

    core = state(sw, "core")
    assert core.locations == (
        Location(user="user1", mac=M1, ip=IP1, port="k-c2", anchor="k-c1"),)

    # Before the core confirmed the anchor, the visited CPE must not let the user out.
    visited = state(sw, "cpe2")
    assert not any(u.authenticated for u in visited.users)
    assert all(u.name != "user1" for u in visited.users)

    gen = asyncio.run(sw.publish("core"))
    assert gen is not None
    assert not any(u.authenticated for u in state(sw, "cpe2").users)  # published, unconfirmed
    sw.synced(SwitchSynced(node="core", generation=gen, added=0, deleted=0, unchanged=0, ts=0))
    # confirmed, but its datapath may still forward by cached flows from before the anchor
    assert not any(u.authenticated for u in state(sw, "cpe2").users)
    asyncio.run(sw.settle({"core": gen}))

    [u] = state(sw, "cpe2").users
    assert (u.name, u.mac, u.ip, u.port) == ("user1", M1, IP1, "cpe2-a1")
    assert u.authenticated and u.chain == ()  # out by the uplink, to the anchor's NFs


class Controller:
    """The bus as a controller and agents use it: each desired state is confirmed at once,
    each settle command answered; what was sent, in order."""

    def __init__(self, sw: Switches, settles: bool = True, reports: bool = False) -> None:
        self.sw, self.settles, self.sent = sw, settles, []
        self.reports = reports  # agents report their datapath settled (agent/settle.py)
        self.down: set[str] = set()  # switches whose states are not confirmed
        sw.nc = self

    async def publish(self, subject: str, data: bytes) -> None:
        st = SwitchState.model_validate_json(data)
        self.sent.append(("state", st.node, st))
        if st.node not in self.down:
            asyncio.get_running_loop().call_soon(self.confirm, st)

    def confirm(self, st: SwitchState) -> None:
        assert st.generation is not None
        self.sw.synced(SwitchSynced(node=st.node, generation=st.generation, added=1,
                                    deleted=0, unchanged=0, ts=0))
        if self.reports:
            rep = DatapathSettled(node=st.node, generation=st.generation, ts=0)
            asyncio.get_running_loop().call_soon(self.sw.datapaths.report, rep)

    async def request(self, subject: str, data: bytes, timeout: float) -> object:
        node = subject.split(".")[2]  # netfate.node.{node}.cmd
        self.sent.append(("settle", node, None))
        if not self.settles:
            raise TimeoutError(f"no agent of {node}")
        return object()

    def order(self) -> list[tuple[str, str]]:
        return [(what, node) for what, node, _ in self.sent]


def _complete_move_to_cpe2(db: Database) -> None:
    with db.session() as s:  # the move to cpe2 completes: NFs there, steered last
        b = repo.get_instance(s, IID).bundle_sha256
        i2 = repo.upsert_instance(s, node="cpe2", owner="user1", nf_name="firewall",
                                  bundle_sha256=b, flavour="native")
        repo.set_steering(s, user="user1", node="cpe2", chain=[i2.id], mac=M1, ip=IP1,
                          now=time.time() + 1)
        repo.clear_steering(s, user="user1", node="cpe1")


@pytest.mark.parametrize("via", ["cpe1", "cpe2", "core"])
def test_an_anchor_ends_only_once_the_visited_cpe_steers_the_user_itself(
        db: Database, via: str) -> None:
    """The fail-open window at the end of a move (README, "Not there yet", fixed): the core
    stops diverting the user to their old NFs only after the visited CPE, which let their
    raw traffic out by its uplink, forwards by its new state (the new NFs) and its datapath
    is settled. Whichever node's change ends the anchor."""
    steer_and_login(db, session_at="cpe2")
    sw = switches(db, {}, {M1: "cpe2-a1"})
    bus = Controller(sw)
    asyncio.run(sw.apply_anchor("user1", "cpe2"))
    # make: the core's anchor confirmed and settled before cpe2 lets the user out raw
    order = bus.order()
    assert order.index(("settle", "core")) < max(
        i for i, (what, node) in enumerate(order) if (what, node) == ("state", "cpe2"))
    [u] = [st for what, node, st in bus.sent if what == "state" and node == "cpe2"][-1].users
    assert u.name == "user1" and u.authenticated and u.chain == ()
    bus.sent.clear()

    _complete_move_to_cpe2(db)
    asyncio.run(sw.apply(via))
    order = bus.order()
    core_at = next(i for i, (what, node) in enumerate(order) if node == "core")
    assert ("state", "cpe2") in order[:core_at] and ("settle", "cpe2") in order[:core_at]
    [u] = [c for what, node, st in bus.sent if what == "state" and node == "cpe2"
           for c in st.users]
    assert u.chain == (Hop(lan=naming.nf_port("cpe2-user1-firewall", "lan"),
                           wan=naming.nf_port("cpe2-user1-firewall", "wan")),)
    assert not any(loc.anchor for loc in bus.sent[core_at][2].locations)


def test_agents_that_report_their_datapath_settled_are_not_asked(db: Database) -> None:
    """The anchor waits for the core's agent to say its datapath forwards by the anchor
    (DatapathSettled) rather than asking it to purge again; the order is the same."""
    steer_and_login(db, session_at="cpe2")
    sw = switches(db, {}, {M1: "cpe2-a1"})
    for node in ("core", "cpe1", "cpe2"):  # each agent has reported once since it started
        sw.datapaths.report(DatapathSettled(node=node, generation=0, ts=0))
    bus = Controller(sw, reports=True)
    asyncio.run(sw.apply_anchor("user1", "cpe2"))
    assert all(what != "settle" for what, _ in bus.order())
    assert sw.anchors.settled.get("core", -1) >= 1
    [u] = [st for what, node, st in bus.sent if what == "state" and node == "cpe2"][-1].users
    assert u.name == "user1" and u.authenticated and u.chain == ()


def test_an_agent_that_does_not_settle_costs_the_revalidators_bound_not_the_order(
        db: Database) -> None:
    steer_and_login(db, session_at="cpe2")
    sw = switches(db, {}, {M1: "cpe2-a1"})
    bus = Controller(sw, settles=False)
    asyncio.run(sw.apply_anchor("user1", "cpe2"))
    assert any(u.authenticated for u in state(sw, "cpe2").users)  # after REVALIDATE_S
    bus.sent.clear()
    _complete_move_to_cpe2(db)
    t0 = time.monotonic()
    asyncio.run(sw.apply("cpe1"))
    assert time.monotonic() - t0 >= 0.4
    order = bus.order()
    assert order.index(("settle", "cpe2")) < order.index(("state", "core"))


def test_a_second_migration_waits_for_its_own_anchor(db: Database) -> None:
    steer_and_login(db, session_at="cpe2")
    sw = switches(db, {}, {M1: "cpe2-a1"})
    gen = asyncio.run(sw.publish("core"))
    assert gen is not None
    sw.synced(SwitchSynced(node="core", generation=gen, added=0, deleted=0, unchanged=0, ts=0))
    _complete_move_to_cpe2(db)
    asyncio.run(sw.publish("core"))
    # ...then the user comes back to cpe1 while their NFs are at cpe2
    with db.session() as s:
        repo.add_session(s, user="user1", node="cpe1", mac=M1, ip=IP1, now=time.time() + 2)
    sw.set_ports("cpe1", cpe_ports("cpe1", {M1: "cpe1-a1"}))
    sw.set_ports("cpe2", cpe_ports("cpe2", {}))
    assert not any(u.authenticated for u in state(sw, "cpe1").users)


def test_ts_rules_at_a_node_are_in_its_switch_state(db: Database) -> None:
    """Table I: an operator's TS rules travel in the node's state, so the controller keeps
    them (its sync removes only what the state no longer has)."""
    from netfate.controller.ts_rules import chain_rules

    rules = chain_rules("bench:x", M9, "cpe1-a1", "cpe1-up", [(FW.lan, FW.wan)])
    with db.session() as s:
        repo.put_ts_rules(s, "cpe1", [r.model_dump(mode="json") for r in rules])
    sw = switches(db, {M9: "cpe1-a1"}, {})
    assert state(sw, "cpe1").ts_rules == tuple(sorted(rules, key=lambda r: r.rule_id))
    assert state(sw, "cpe2").ts_rules == () and state(sw, "core").ts_rules == ()
    with db.session() as s:
        assert repo.delete_ts_rules(s, "cpe1", [r.rule_id for r in rules]) == len(rules)
    assert state(sw, "cpe1").ts_rules == ()


def test_a_roaming_user_without_nfs_is_not_anchored_one_with_nfs_is(db: Database) -> None:
    with db.session() as s:
        repo.add_session(s, user="user1", node="cpe2", mac=M1, ip=IP1)
        repo.set_steering(s, user="user1", node="cpe1", chain=[], mac=M1, ip=IP1)
    sw = switches(db, {}, {M1: "cpe2-a1"})
    asyncio.run(sw.apply_anchor("user1", "cpe2"))
    assert sw.summary() and all(n["generation"] is None for n in sw.summary())  # nothing sent
    with db.session() as s:
        repo.set_steering(s, user="user1", node="cpe1", chain=[IID], mac=M1, ip=IP1)
    asyncio.run(sw.apply_anchor("user1", "cpe2"))
    published = {n["node"] for n in sw.summary() if n["generation"] is not None}
    assert {"cpe1", "core", "cpe2"} <= published


def test_an_anchor_is_held_while_the_visited_cpe_does_not_confirm_and_ends_once_it_does(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """The visited CPE's controller is gone (its switch keeps the flows that let the user
    out raw): the core keeps diverting the user to their old CPE (dropped there once the
    old NFs are gone), never forwards them unfiltered; other publications do not wait on
    that CPE again; its confirmation ends the anchor."""
    from netfate.orchestrator import switches as mod

    monkeypatch.setattr(mod, "SYNC_TIMEOUT_S", 0.2)
    steer_and_login(db, session_at="cpe2")
    sw = switches(db, {}, {M1: "cpe2-a1"})
    bus = Controller(sw)
    anchored = Location(user="user1", mac=M1, ip=IP1, port="k-c2", anchor="k-c1")

    def core() -> SwitchState:
        return [st for what, node, st in bus.sent if what == "state" and node == "core"][-1]

    async def scenario() -> None:
        await sw.apply_anchor("user1", "cpe2")
        assert core().locations == (anchored,)
        bus.down.add("cpe2")
        _complete_move_to_cpe2(db)
        await sw.apply("cpe1")
        assert core().locations == (anchored,)  # held
        assert ("settle", "cpe2") not in bus.order()
        t0 = time.monotonic()
        await sw.apply("core")
        assert time.monotonic() - t0 < 0.15  # not waited for again
        assert core().locations == (anchored,)
        # cpe2's controller is back and confirms the state it was sent
        bus.down.clear()
        bus.confirm([st for what, node, st in bus.sent if node == "cpe2"][-1])
        for _ in range(50):
            await asyncio.sleep(0.01)
            if core().locations != (anchored,):
                break
        assert core().locations == (Location(user="user1", mac=M1, ip=IP1, port="k-c2"),)
        order = bus.order()
        assert order.index(("settle", "cpe2")) < len(order) - 1 - order[::-1].index(
            ("state", "core"))

    asyncio.run(scenario())


class _Lost:
    """A bus on which no controller listens yet: what was published, in order."""

    def __init__(self, sw: Switches) -> None:
        self.sent: list[SwitchState] = []
        sw.nc = self

    async def publish(self, subject: str, data: bytes) -> None:
        self.sent.append(SwitchState.model_validate_json(data))


def test_publish_all_sends_every_state_even_one_a_newer_read_found_unchanged(
        db: Database) -> None:
    """A controller that (re)subscribes says hello and the orchestrator publishes every state,
    forced. A node whose state a newer read found unchanged meanwhile (an agent registering
    again) was skipped, so a state first sent before the controller had subscribed was never
    sent again and that switch stayed unprogrammed (CI, 2026-12-05). Its newest state goes
    out again, under a new generation."""
    steer_and_login(db)
    sw = switches(db, {M1: "cpe1-a2"}, {})
    bus = _Lost(sw)

    async def scenario() -> None:
        first = await sw.publish_many(["cpe1", "cpe2", "core"])  # lost: no one listened
        bus.sent.clear()
        every = asyncio.create_task(sw.publish_all())
        await asyncio.sleep(0)  # publish_all holds the lock while it reads the world
        one = asyncio.create_task(sw.publish_many(["cpe1"]))  # queued behind that read
        await asyncio.gather(every, one)
        again = {st.node: st.generation for st in bus.sent}
        assert set(again) == {"cpe1", "cpe2", "core"}, bus.sent
        assert all(again[n] > (first[n] or 0) for n in again)

    asyncio.run(scenario())
    assert sw._pub_read["cpe1"] > min(sw._pub_read.values())  # the newer read did happen
