"""A shared NF's tenants (issue 11, NNF paper IV.E), without root: the config the
orchestrator gives a shared instance (each active user's own config with their VLAN), the
firewall's per-tenant ruleset, and the VLAN on a shared NF's hop in a switch's state."""

from __future__ import annotations

from pathlib import Path

import pytest

from netfate.controller import pipeline as pl
from netfate.db import Database, repo, sqlite_url
from netfate.db.repo.switching import ChainNf
from netfate.orchestrator import lcm_records as rec
from netfate.orchestrator.switch_state import hop_of
from netfate.orchestrator.tenants import retenant_user, tenants_config
from tests.unit.catalogue_nf import load

fw = load("firewall", "fw")
PORTS = ({"name": "lan", "role": "lan"}, {"name": "wan", "role": "wan"})


def test_tenants_config_gives_each_active_user_their_own_config_and_vlan() -> None:
    configs = {"bob": {"firewall": {"rules": [{"action": "deny", "dport": 22}]}},
               "amy": {"other": {"x": 1}},
               "eve": {"firewall": {"tenants": [{"user": "bob", "vlan": 7}], "vlan": 7}}}
    cfg = tenants_config("firewall", ["eve", "bob", "amy", "bob"], configs)
    assert cfg == {"tenants": [
        {"user": "amy", "vlan": pl.tenant_vlan("amy")},
        {"rules": [{"action": "deny", "dport": 22}], "user": "bob",
         "vlan": pl.tenant_vlan("bob")},
        {"user": "eve", "vlan": pl.tenant_vlan("eve")},  # nobody configures another tenant
    ]}
    assert tenants_config("firewall", [], configs) == {"tenants": []}


def test_a_shared_nfs_hop_carries_the_users_vlan_an_own_nfs_none() -> None:
    shared = ChainNf(node="dc", nf="firewall", ports=PORTS, shared=True)
    own = ChainNf(node="dc", nf="firewall", ports=PORTS)
    assert hop_of("dc-u1-firewall", shared, "u2").vlan == pl.tenant_vlan("u2")  # type: ignore[union-attr]
    assert hop_of("dc-u1-firewall", own, "u2").vlan is None  # type: ignore[union-attr]


def test_the_firewall_applies_each_tenants_rules_to_its_vlan_only() -> None:
    cfg = {"default_out": "allow", "tenants": [
        {"user": "u1", "vlan": 101, "rules": [{"action": "deny", "proto": "tcp",
                                               "dport": 2323}]},
        {"user": "u2", "vlan": 202, "default_out": "deny"}]}
    text = fw.build_ruleset(cfg, ("lan", "wan"))
    assert 'iifname "lan" vlan id 101 meta mark set 0x651' in text
    assert 'iifname "wan" vlan id 202 meta mark set 0xca2' in text
    assert "meta mark 0x651 jump out_101" in text and "meta mark 0xca2 jump in_202" in text
    out_101 = text.split("chain out_101 {")[1].split("}")[0]
    assert "th dport 2323 counter drop" in out_101 and "counter accept" in out_101
    out_202 = text.split("chain out_202 {")[1].split("}")[0]
    assert "dport 2323" not in out_202 and 'counter drop comment "vlan 202 default_out"' \
        in out_202
    # traffic with no tenant's VLAN is never forwarded
    assert 'meta mark 0x0 counter drop comment "no tenant"' in text
    assert "policy drop;" in text.split(f"table inet {fw.TABLE} {{")[1]


@pytest.mark.parametrize(("tenants", "message"), [
    ([{"user": "u1", "vlan": 0}], "tenants[0].vlan"),
    ([{"user": "u1", "vlan": 5}, {"user": "u2", "vlan": 5}], "5 is another tenant's"),
    ([{"vlan": 5}], "tenants[0].user"),
    ([{"user": "u1", "vlan": 5, "colour": "red"}], "unknown config keys: ['colour']"),
    ("x", "tenants: must be a list"),
])
def test_bad_tenants_die_naming_the_field(tenants: object, message: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        fw.normalise({"tenants": tenants})
    assert message in capsys.readouterr().err


def test_a_shared_instances_config_follows_its_users_and_their_edits(tmp_path: Path) -> None:
    """Steering a user across a shared instance makes them a tenant of it (their VLAN and
    their own config); the node to tell is returned; an edit of their config is picked up;
    leaving removes them. An instance of an NF that is not shared is never rewritten."""
    d = Database.create(sqlite_url(tmp_path / "state"))
    try:
        with d.session() as s:
            repo.upsert_node(s, "cpe1", role="cpe")
            repo.upsert_node(s, "dc", role="dc")
            for n in ("sfw", "fw"):
                b = repo.add_bundle(s, n.encode(), name=n, version="1",
                                    descriptor={"name": n, "shared": n == "sfw"})
                for u in ("u1", "u2"):
                    if n == "sfw":
                        repo.create_user(s, u, f"pw-{u}-pw", required_nfs=["sfw"],
                                         nf_config={"sfw": {"default_out": "allow"}})
                        repo.update_user_seen(s, u, mac=f"02:00:00:00:00:0{u[1]}",
                                              ip=f"10.0.0.{u[1]}")
                repo.upsert_instance(s, node="dc", owner="u1", nf_name=n,
                                     bundle_sha256=b.sha256, flavour="native",
                                     instance_id=f"dc-u1-{n}", config={"x": 1})
        with d.session() as s:
            assert rec.steer(s, "u1", "cpe1", ["dc-u1-sfw", "dc-u1-fw"], None, None) == ["dc"]
            assert rec.steer(s, "u2", "cpe1", ["dc-u1-sfw"], None, None) == ["dc"]
        with d.session() as s:
            cfg = repo.get_instance(s, "dc-u1-sfw").config
            assert [(t["user"], t["vlan"], t["default_out"]) for t in cfg["tenants"]] == [
                ("u1", pl.tenant_vlan("u1"), "allow"), ("u2", pl.tenant_vlan("u2"), "allow")]
            assert repo.get_instance(s, "dc-u1-fw").config == {"x": 1}
            repo.update_user(s, "u2", nf_config={"sfw": {"default_out": "deny"}})
            s.flush()
            assert retenant_user(s.connection(), "u2", ["sfw"]) == ["dc"]
            assert retenant_user(s.connection(), "u2", ["sfw"]) == []  # nothing new
        with d.session() as s:
            t = repo.get_instance(s, "dc-u1-sfw").config["tenants"]
            assert [x["default_out"] for x in t] == ["allow", "deny"]
            assert rec.unsteer(s, "u1", "cpe1") == ["dc"]
        with d.session() as s:
            assert [x["user"] for x in repo.get_instance(s, "dc-u1-sfw").config["tenants"]] \
                == ["u2"]
    finally:
        d.dispose()


def test_one_users_bad_config_never_breaks_a_shared_instance(tmp_path: Path) -> None:
    """A user's nf_config of a shared NF was written into the instance's tenants config
    unchecked: one user's bad value (default_out "maybe") made the whole config fail the NF's
    schema, so the NF could not be updated for any tenant. An edit with a bad config is now
    refused (InvalidInput naming the user, nothing changed); a bad config already stored
    (e.g. given at POST /users) leaves that user out (the firewall drops untagged tenants'
    traffic), never the others."""
    import yaml

    from netfate.descriptor import parse_descriptor
    from netfate.errors import InvalidInput

    text = (Path(fw.__file__).parents[1] / "descriptor.yaml").read_text()
    desc = {**yaml.safe_load(text), "shared": True}
    d = Database.create(sqlite_url(tmp_path / "state"))
    try:
        with d.session() as s:
            repo.upsert_node(s, "cpe1", role="cpe")
            repo.upsert_node(s, "dc", role="dc")
            b = repo.add_bundle(s, b"fw", name="firewall", version="1", descriptor=desc)
            for u, cfg in (("u1", {"default_out": "allow"}), ("u2", {"default_out": "no"})):
                repo.create_user(s, u, f"pw-{u}-pw", required_nfs=["firewall"],
                                 nf_config={"firewall": cfg})
            repo.upsert_instance(s, node="dc", owner="u1", nf_name="firewall",
                                 bundle_sha256=b.sha256, flavour="native",
                                 instance_id="dc-u1-firewall", config={})
        with d.session() as s:
            rec.steer(s, "u1", "cpe1", ["dc-u1-firewall"], None, None)
            rec.steer(s, "u2", "cpe1", ["dc-u1-firewall"], None, None)
        with d.session() as s:
            cfg = repo.get_instance(s, "dc-u1-firewall").config
            assert [t["user"] for t in cfg["tenants"]] == ["u1"]
            parse_descriptor(desc, "fw").validate_config(cfg)
            repo.update_user(s, "u1", nf_config={"firewall": {"default_out": 7}})
            s.flush()
            with pytest.raises(InvalidInput, match="u1"):
                retenant_user(s.connection(), "u1", ["firewall"])
    finally:
        d.dispose()


def test_two_users_with_the_same_vlan_never_share_it_on_one_nf() -> None:
    """u35 and u59 hash to VLAN 2438: with both in the NF's tenant list, the NF would apply one
    tenant's policy to the other's traffic. The first in name order keeps it, as the switch
    does (the other is left out there too, failing closed)."""
    assert pl.tenant_vlan("u35") == pl.tenant_vlan("u59")
    cfg = tenants_config("firewall", ["u59", "u35", "u1"], {
        "u35": {"firewall": {"default_out": "allow"}},
        "u59": {"firewall": {"default_out": "deny"}}})
    assert [(t["user"], t["vlan"]) for t in cfg["tenants"]] == [
        ("u1", pl.tenant_vlan("u1")), ("u35", 2438)]
    assert cfg["tenants"][1]["default_out"] == "allow"
