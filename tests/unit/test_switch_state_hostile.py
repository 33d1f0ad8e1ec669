"""Issue #16, inputs 5 and 6 on the orchestrator's side: a bad entry (a group MAC, an address
that is not one, two users on one address) is left out of a switch's state, logged and
counted, and the rest is built; unauthenticated stations are capped per port and per node,
the oldest forgotten, so 3,000 random MACs in DHCP cost a bounded state and memory."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest

from netfate.controller.flows import build
from netfate.counters import ENTRIES_SKIPPED, REGISTRY, STATIONS_EVICTED
from netfate.db.repo.switching import SteeredRule
from netfate.orchestrator.switch_state import UNKNOWN_CLIENT, World
from netfate.orchestrator.switches import Switches

from .test_switch_state import IP1, M1, M9, ofports, state, world
from .test_switches_state import cpe_ports, db, steer_and_login  # noqa: F401 - fixture

GROUP_SRC = "03:00:00:00:00:01"


def skipped() -> int:
    return REGISTRY.total(ENTRIES_SKIPPED)


def test_a_group_mac_seen_in_dhcp_is_left_out_and_the_rest_is_built() -> None:
    w = world(cpe1={M1: "cpe1-a2"})
    w = World(**{**w.__dict__, "seen": {"cpe1": {GROUP_SRC: "cpe1-a1", M9: "cpe1-a1"}}})
    before = skipped()
    st = state(w, "cpe1")
    assert {u.name for u in st.users} == {"user1", UNKNOWN_CLIENT + M9}
    assert skipped() == before + 1


@pytest.mark.parametrize(("mac", "ip"), [
    (GROUP_SRC, "10.90.1.5"),
    ("ff:ff:ff:ff:ff:ff", "10.90.1.5"),
    ("01:00:5e:00:00:01", "10.90.1.5"),
    ("02:aa:00:00:00:05", "999.1.1.1"),
    ("02:aa:00:00:00:05", "\u0661\u0660.\u0669\u0660.\u0661.\u0665"),
    ("02:aa:00:00:00:05", IP1),  # another user's address
])
def test_a_stored_bad_user_is_left_out_and_the_others_keep_their_flows(mac: str, ip: str
                                                                       ) -> None:
    """As if stored before the API checked (or by another path): the switch keeps working."""
    good = world(cpe1={M1: "cpe1-a2", mac: "cpe1-a1"})
    bad = SteeredRule(user="user2", node="cpe1", mac=mac, ip=ip, chain=())
    rec = good.records
    w = World(**{**good.__dict__, "records": type(rec)(**{
        **rec.__dict__, "rules": (*rec.rules, bad), "sessions": {**rec.sessions,
                                                                  "user2": "cpe1"}})})
    before = skipped()
    st = state(w, "cpe1")
    assert "user1" in {u.name for u in st.users} and "user2" not in {u.name for u in st.users}
    assert skipped() > before
    fs = build(st, ofports(st))
    assert not fs.skipped and fs.flows


def test_a_bad_location_is_left_out_of_the_core() -> None:
    w = world(cpe1={M1: "cpe1-a2"})
    rec = w.records
    bad = SteeredRule(user="user2", node="cpe2", mac="ff:ff:ff:ff:ff:ff", ip="10.90.1.7",
                      chain=())
    w = World(**{**w.__dict__, "records": type(rec)(**{**rec.__dict__,
                                                       "rules": (*rec.rules, bad)})})
    st = state(w, "core")
    assert [loc.user for loc in st.locations] == ["user1"]


def test_three_thousand_random_macs_cost_a_bounded_state() -> None:
    rng = random.Random(16)
    macs = [f"02:{rng.randrange(1 << 40):010x}" for _ in range(3000)]
    macs = [":".join([m[:2]] + [m[3:][i:i + 2] for i in range(0, 10, 2)]) for m in macs]
    seen = {m: "cpe1-a1" for m in macs}
    w = world(cpe1={M1: "cpe1-a2"})
    w = World(**{**w.__dict__, "seen": {"cpe1": seen}, "max_hosts_per_port": 32,
                 "max_hosts_per_node": 40})
    st = state(w, "cpe1")
    guests = [u for u in st.users if not u.authenticated]
    assert len(guests) == 32  # per port
    assert {u.mac for u in guests} == set(macs[-32:])  # the newest kept
    assert "user1" in {u.name for u in st.users}
    # A handful of flows per station (DHCP, ARP, captive DNS replies, ...): bounded by the
    # cap, not by the 3,000 MACs seen (9,014 flows before the cap).
    assert len(build(st, ofports(st)).flows) < 300
    # The per-node cap holds across ports.
    seen2 = {**{m: "cpe1-a1" for m in macs[:30]}, **{m: "cpe1-a2" for m in macs[30:60]}}
    w2 = World(**{**w.__dict__, "seen": {"cpe1": seen2}})
    assert len([u for u in state(w2, "cpe1").users if not u.authenticated]) == 40


@pytest.fixture
def sw(db) -> Iterator[Switches]:  # noqa: F811 - the fixture imported above
    s = Switches(db, nc=None, max_hosts_per_port=8, max_hosts_per_node=12)
    s.set_ports("cpe1", cpe_ports("cpe1", {}))
    yield s


def test_the_orchestrators_memory_of_seen_stations_is_bounded(sw: Switches, db) -> None:  # noqa: F811
    steer_and_login(db)
    assert sw.client_seen("cpe1", M1, "cpe1-a1")  # the logged-in user's DHCP, first
    asyncio.run(sw.publish("cpe1"))
    before = REGISTRY.total(STATIONS_EVICTED)
    for i in range(3000):
        sw.client_seen("cpe1", f"02:bb:00:00:{i >> 8:02x}:{i & 0xFF:02x}", "cpe1-a1")
    assert len(sw.seen["cpe1"]) == 9  # the cap, plus the logged-in user (never evicted)
    assert M1 in sw.seen["cpe1"]
    assert REGISTRY.total(STATIONS_EVICTED) - before == 3000 - 8
    st = asyncio.run(sw.state_for("cpe1"))
    assert st is not None and len(st.users) == 9
    assert next(u for u in st.users if u.mac == M1).authenticated


def test_a_group_mac_is_never_remembered(sw: Switches) -> None:
    with pytest.raises(ValueError, match="group"):
        sw.client_seen("cpe1", GROUP_SRC, "cpe1-a1")
    assert not sw.seen.get("cpe1")


def test_publishing_goes_on_after_a_bad_entry(sw: Switches, db) -> None:  # noqa: F811
    from netfate.db import repo
    steer_and_login(db)
    with db.session() as s:  # stored as if before the API checked
        repo.create_user(s, "user2", "Pw-user2-long-enough")
        repo.set_steering(s, user="user2", node="cpe1", chain=[], mac=GROUP_SRC,
                          ip="10.90.1.8")
    sw.set_ports("cpe1", cpe_ports("cpe1", {M1: "cpe1-a1", GROUP_SRC: "cpe1-a2"}))
    gen = asyncio.run(sw.publish("cpe1"))
    assert gen is not None
    st = asyncio.run(sw.state_for("cpe1"))
    assert st is not None and [u.name for u in st.users] == ["user1"]


def test_a_lease_that_is_no_address_costs_the_station_only_its_address() -> None:
    w = world(steered_at=None, cpe1={M9: "cpe1-a1"})
    ports = w.ports["cpe1"].model_copy(update={"leases": {M9: "999.1.1.1"}})
    w = World(**{**w.__dict__, "ports": {**w.ports, "cpe1": ports}})
    [u] = state(w, "cpe1").users
    assert u.mac == M9 and u.ip is None
