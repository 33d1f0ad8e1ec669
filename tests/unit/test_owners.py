"""Operator-owned NFs (netfate.owners): a kind of owner that is no user. A probe the operator
puts in a user's path is neither kept nor released by that user's plans. Pure."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from netfate.engine import CatalogueEntry, InstanceView, Release, UserAssociated, UserIdle, plan
from netfate.engine.model import UserView
from netfate.owners import OPERATOR, check_user_name, is_operator_owned, owner_kind

from .test_engine_support import FIREWALL, MAC, dc, inst, node, user, world

PROBE = CatalogueEntry(name="troubleshooter", memory_mb=32, shared=True)
CAT = (FIREWALL, PROBE)


def probe(node: str, users: tuple[str, ...]) -> InstanceView:
    return InstanceView(instance_id=f"{node}-operator-troubleshooter", nf="troubleshooter",
                        owner=OPERATOR, node=node, state="running", users=users)


def test_owner_kinds() -> None:
    assert owner_kind("operator") == "operator" and is_operator_owned(OPERATOR)
    assert owner_kind("alice") == "user" and not is_operator_owned("operators")
    assert check_user_name("alice") == "alice"
    with pytest.raises(ValueError, match="reserved for operator-owned NFs"):
        check_user_name("operator")


def test_no_user_may_be_named_after_the_operator() -> None:
    with pytest.raises(ValidationError, match="reserved"):
        UserView(name="operator")


def test_a_probe_in_a_users_path_is_not_among_their_nfs() -> None:
    snap = world([node("cpe1"), dc()], [user("alice", ("firewall",), at="cpe1")],
                 [inst("cpe1", "alice", "firewall"), probe("cpe1", ("alice",))], CAT)
    assert [i.nf for i in snap.serving("alice")] == ["firewall"]
    assert snap.instances_of(OPERATOR)[0].owner_kind == "operator"
    # but it uses the node all the same (capacity counts it)
    assert len(snap.instances_on("cpe1")) == 2


def test_the_users_plans_neither_release_nor_fight_the_probe() -> None:
    snap = world([node("cpe1"), dc()], [user("alice", ("firewall",), at="cpe1")],
                 [inst("cpe1", "alice", "firewall"), probe("cpe1", ("alice",))], CAT)
    for event in (UserAssociated(user="alice", node="cpe1", mac=MAC), UserIdle(user="alice")):
        p = plan(snap, event)
        assert all("troubleshooter" not in r.instance_id for r in p.of(Release)), p
        assert not any("troubleshooter" in r for r in p.reasons), p.reasons


def test_the_api_refuses_a_user_named_after_the_operator() -> None:
    from netfate.orchestrator.api.schemas import UserCreate

    assert UserCreate(name="alice", password="secret").name == "alice"
    with pytest.raises(ValidationError, match="reserved for operator-owned NFs"):
        UserCreate(name="operator", password="secret")
