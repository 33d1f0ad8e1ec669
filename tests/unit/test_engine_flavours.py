"""Flavour selection by the resolver: an NF goes only where the node hosts one of its
flavours; native at the edge, container in the DC (the default rule), or the NF's own order
(the "first" rule); native everywhere plans as before."""

from __future__ import annotations

import pytest

from netfate import resolver
from netfate.engine import CatalogueEntry, Migrate, Place, UserAssociated, plan
from netfate.flavours import DEFAULT_FLAVOUR, advertised, check_flavour

from .test_engine_support import FW_CAPS, IP, MAC, dc, inst, node, user, world

LOGIN = UserAssociated(user="alice", node="cpe1", mac=MAC, ip=IP)


def fw(*flavours: str) -> CatalogueEntry:
    return CatalogueEntry(name="firewall", capabilities=FW_CAPS, memory_mb=16,
                          flavours=flavours)


def test_a_node_that_reports_no_flavours_is_native() -> None:
    assert advertised({}) == advertised(None) == frozenset({DEFAULT_FLAVOUR})
    assert advertised({"flavours": ["native", "container"]}) == {"native", "container"}


def test_flavour_names_are_tokens() -> None:
    assert check_flavour("wasm") == "wasm"
    with pytest.raises(ValueError, match="flavour"):
        check_flavour("Native VM")


def test_defaults_are_native_so_plans_are_unchanged() -> None:
    p = plan(world([node("cpe1"), dc()], [user(at="cpe1")]), LOGIN)
    places = [i for i in p.intents if isinstance(i, Place)]
    assert [(i.node, i.flavour) for i in places] == [("cpe1", "native")]


def test_place_carries_the_flavour_the_resolver_picks() -> None:
    cpe = node("cpe1").model_copy(update={"flavours": frozenset({"native", "container"})})
    snap = world([cpe, dc()], [user(at="cpe1")], catalogue=[fw("container", "native")])
    places = [i for i in plan(snap, LOGIN).intents if isinstance(i, Place)]
    assert [(i.node, i.flavour) for i in places] == [("cpe1", "native")]  # native at the edge
    resolver.select("first")  # the NF's own order of preference
    try:
        places = [i for i in plan(snap, LOGIN).intents if isinstance(i, Place)]
    finally:
        resolver.select(resolver.DEFAULT_RULE)
    assert [(i.node, i.flavour) for i in places] == [("cpe1", "container")]


def test_node_without_a_common_flavour_is_skipped_for_the_dc() -> None:
    cpe = node("cpe1")  # native only
    big = dc().model_copy(update={"flavours": frozenset({"vm"})})
    snap = world([cpe, big], [user(at="cpe1")], catalogue=[fw("vm")])
    p = plan(snap, LOGIN)
    places = [i for i in p.intents if isinstance(i, Place)]
    assert [(i.node, i.flavour) for i in places] == [("dc1", "vm")]


def test_no_node_with_a_common_flavour_leaves_it_unplaced_and_says_why() -> None:
    snap = world([node("cpe1"), dc()], [user(at="cpe1")], catalogue=[fw("vm")])
    p = plan(snap, LOGIN)
    assert not [i for i in p.intents if isinstance(i, Place)]
    assert [u.nf for u in p.unplaced] == ["firewall"]
    assert "runs none of its flavours vm (node has native)" in p.unplaced[0].reason


def test_migrate_carries_the_flavour_on_the_destination() -> None:
    cpe2 = node("cpe2").model_copy(update={"flavours": frozenset({"container"})})
    snap = world([node("cpe1"), cpe2, dc()], [user(at="cpe1")], [inst("cpe1", "alice", "firewall")],
                 catalogue=[fw("native", "container")])
    p = plan(snap, UserAssociated(user="alice", node="cpe2", mac=MAC, ip=IP))
    moves = [i for i in p.intents if isinstance(i, Migrate)]
    assert [(m.src, m.dst, m.flavour) for m in moves] == [("cpe1", "cpe2", "container")]
