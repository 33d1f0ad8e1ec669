"""Shared NFs on the real data plane (issue 11, NNF paper IV.E): one firewall instance in the
DC serves two users. The switch tags each user's traffic with their VLAN on the NF's ports;
the NF applies each tenant's own rules to its VLAN. The second user joins the running
instance (no new one), each user's rules apply to them only, and releasing one leaves the NF
running and the other served. One stack for the module: the CPEs and the PE have no room,
so the firewall runs in the DC."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from netfate import catalogue
from netfate.bundle import build_bundle
from netfate.controller import pipeline as pl
from netfate.roaming.session import portal_login, wait_for
from netfate.testbed.topology import Topology, two_cpes_yaml

from .helpers import ALLOWED, DENIED, topology_file
from .test_dc_failure import served_stack
from .test_overlay import echo, owned_flows
from .test_roaming import connects

TOPOLOGY = two_cpes_yaml("netfate-shared-nf-test", ("dc",))
NF = "shared-firewall"
INSTANCE = f"dc-user1-{NF}"
# Each tenant's own rules: user1 may not reach DENIED, user2 may not reach ALLOWED.
RULES = {"user1": DENIED, "user2": ALLOWED}


def shared_variant(tmp: Path) -> bytes:
    """The catalogue's firewall as a shared NF (descriptor `shared: true`), native only."""
    src = tmp / NF
    shutil.copytree(catalogue.source_dir("firewall"), src)
    desc = yaml.safe_load((src / "descriptor.yaml").read_text())
    desc.update({"name": NF, "shared": True, "flavours": ["native"], "vnf-type": "native"})
    (src / "descriptor.yaml").write_text(yaml.safe_dump(desc, sort_keys=False))
    shared = Path(str(catalogue.source_dir("firewall").parent / "_shared"))
    files = (*catalogue.SHARED, *catalogue.EXTRAS.get("firewall", ()))  # ctstate.py too
    return build_bundle(src, {f"files/{f}": shared / f for f in files})


@pytest.fixture(scope="module")
def topo(tmp_path_factory: pytest.TempPathFactory) -> Topology:
    return topology_file(tmp_path_factory, "shared", TOPOLOGY)


@pytest.fixture(scope="module")
def stack(topo: Topology, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[httpx.Client]:
    for api in served_stack(topo):
        r = api.post("/vnf_packages", content=shared_variant(tmp_path_factory.mktemp("nf")),
                     headers={"content-type": "application/gzip"})
        assert r.status_code == 201, r.text
        yield api


def _instances(api: httpx.Client) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in api.get("/vnf_instances").json()
            if i["nf_name"] == NF and i["desired_state"] == "present"}


def _login(api: httpx.Client, topo: Topology, host: str, user: str) -> None:
    r = api.post("/users", json={
        "name": user, "password": f"{user}-secret", "required_nfs": [NF],
        "nf_config": {NF: {"rules": [{"action": "deny", "proto": "tcp",
                                      "dport": RULES[user]}]}}})
    assert r.status_code == 201, r.text
    portal_login(topo, host, user, f"{user}-secret")


def _served_by_own_rules(topo: Topology, host: str, user: str) -> bool:
    ns = topo.host(host).netns
    allowed = DENIED if RULES[user] == ALLOWED else ALLOWED
    return connects(ns, allowed) and not connects(ns, RULES[user])


def test_two_users_share_one_dc_firewall_each_under_their_own_rules(
        stack: httpx.Client, topo: Topology) -> None:
    api = stack
    _login(api, topo, "client1", "user1")
    wait_for(lambda: INSTANCE in _instances(api)
             and _instances(api)[INSTANCE]["actual_state"] == "running", 40,
             "the shared firewall in the DC")
    wait_for(lambda: _served_by_own_rules(topo, "client1", "user1"), 20, "user1 served")
    _login(api, topo, "client2", "user2")
    wait_for(lambda: _instances(api)[INSTANCE]["active_users"] == ["user1", "user2"], 30,
             "user2 joins the running instance")
    assert list(_instances(api)) == [INSTANCE], "no second instance was created"
    # the NF is told its tenants: each user's VLAN with that user's own rules
    tenants = _instances(api)[INSTANCE]["config"]["tenants"]
    assert [(t["user"], t["vlan"]) for t in tenants] == [
        ("user1", pl.tenant_vlan("user1")), ("user2", pl.tenant_vlan("user2"))]
    wait_for(lambda: _served_by_own_rules(topo, "client2", "user2"), 20, "user2 served")
    # each user's traffic crosses the one NF under their own rules only, both ways
    assert _served_by_own_rules(topo, "client1", "user1")
    assert echo(topo.host("client1").netns, ALLOWED)
    assert echo(topo.host("client2").netns, DENIED)
    # on the DC's switch each user's traffic is tagged with their VLAN on the NF's ports
    for user in ("user1", "user2"):
        vid = pl.VLAN_PRESENT | pl.tenant_vlan(user)
        tagged = [f for f in owned_flows("fate-dc", user) if f"{vid:#x}" in f
                  or f"vlan_vid:{pl.tenant_vlan(user)}" in f or f"dl_vlan={pl.tenant_vlan(user)}"
                  in f]
        assert tagged, (user, owned_flows("fate-dc", user))


def test_editing_one_tenants_rules_changes_theirs_only(stack: httpx.Client,
                                                       topo: Topology) -> None:
    api = stack
    c2 = topo.host("client2").netns
    deny_both = {NF: {"rules": [{"action": "deny", "proto": "tcp", "dport": p}
                                for p in (ALLOWED, DENIED)]}}
    r = api.patch("/users/user2", json={"nf_config": deny_both})
    assert r.status_code == 200, r.text
    wait_for(lambda: not connects(c2, DENIED), 20, "user2's new rule in the shared NF")
    assert not connects(c2, ALLOWED)
    assert _served_by_own_rules(topo, "client1", "user1"), "user1's rules are unchanged"
    assert list(_instances(api)) == [INSTANCE]
    r = api.patch("/users/user2", json={"nf_config": {NF: {"rules": [
        {"action": "deny", "proto": "tcp", "dport": RULES["user2"]}]}}})
    assert r.status_code == 200, r.text
    wait_for(lambda: _served_by_own_rules(topo, "client2", "user2"), 20, "user2's rules back")


def test_releasing_one_user_leaves_the_nf_running_and_the_other_served(
        stack: httpx.Client, topo: Topology) -> None:
    api = stack
    r = api.post("/users/user1/logout")
    assert r.status_code == 202, r.text
    wait_for(lambda: _instances(api).get(INSTANCE, {}).get("active_users") == ["user2"], 30,
             "user1 leaves the shared firewall")
    wait_for(lambda: not owned_flows("fate-dc", "user1"), 15, "user1's flows on the DC gone")
    inst = _instances(api)[INSTANCE]
    assert inst["actual_state"] == "running", "the NF keeps running for user2"
    assert [t["user"] for t in inst["config"]["tenants"]] == ["user2"]
    wait_for(lambda: _served_by_own_rules(topo, "client2", "user2"), 15, "user2 still served")
    assert echo(topo.host("client2").netns, DENIED)
    assert not connects(topo.host("client1").netns, ALLOWED), "user1 is no longer served"
