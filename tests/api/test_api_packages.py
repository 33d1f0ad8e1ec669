"""The NF catalogue's versions: an NF's newest package is its highest version, whatever the
order of uploads (an older one uploaded later no longer downgrades new instances), and a
package no NF instance uses can be deleted (SOL005 §9.4.3.3.5)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from netfate import catalogue
from netfate.db.repo import version_key
from tests.api.harness import assert_problem, one_node, wait_op
from tests.api.test_api_input import _file, _with_firewall

API = "/api/v1"
GZ = {"Content-Type": "application/gzip"}
SHIPPED = hashlib.sha256(catalogue.bundle_bytes("firewall")).hexdigest()


@pytest.fixture(scope="module")
def c(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with one_node(Path(tmp_path_factory.mktemp("packages"))) as (_, client):
        yield client


def _upload(c: httpx.Client, version: str, marker: bytes) -> str:
    data = _with_firewall([_file("files/marker.txt", marker)], version=version)
    r = c.post(f"{API}/vnf_packages", content=data, headers=GZ)
    assert r.status_code == 201, r.text
    assert r.json()["version"] == version
    assert r.headers["Location"] == f"{API}/vnf_packages/{r.json()['sha256']}"
    return str(r.json()["sha256"])


def _firewall_of(c: httpx.Client, user: str) -> str:
    """The package a new firewall instance of `user` on cpe1 runs."""
    r = c.post(f"{API}/users", json={"name": user, "password": "secret1"})
    assert r.status_code == 201, r.text
    r = c.post(f"{API}/vnf_instances", json={"nf": "firewall", "owner": user, "node": "cpe1"})
    assert r.status_code == 202, r.text
    assert wait_op(c, r.json()["vnf_lcm_op_occs"][0])["operation_state"] == "COMPLETED"
    inst = c.get(f"{API}/vnf_instances/cpe1-{user}-firewall").json()
    return str(inst["bundle_sha256"])


def test_versions_order_as_numbers() -> None:
    order = ["0", "0.9", "1.0.0", "1.0.0-1", "1.0.1", "1.9", "1.10", "2", "10"]
    assert sorted(order, key=version_key) == order


def test_versions_order_as_pep_440_says() -> None:
    """(review, 2026-12-05) "2.1-beta" stayed newer than "2.1", and "v2" than "10.0"."""
    order = ["a-name", "1.0rc1", "1.0", "2.0-beta", "2.0", "v2.1", "10.0"]
    assert sorted(order, key=version_key) == order
    assert version_key("1.0") == version_key("1.0.0") and version_key("v2") == version_key("2")


def test_the_highest_version_is_the_newest_whatever_the_upload_order(
        c: httpx.Client) -> None:
    older = _upload(c, "0.9", b"older\n")
    listed = {p["sha256"] for p in c.get(f"{API}/vnf_packages").json()}
    assert {older, SHIPPED} <= listed  # both kept: the older one can still be fetched
    assert _firewall_of(c, "usera") == SHIPPED  # not the later upload
    higher = _upload(c, "1.10.0", b"higher\n")
    _upload(c, "1.9.0", b"between\n")  # after 1.10.0 in time, below it in version
    assert _firewall_of(c, "userb") == higher
    # The same version with other bytes is still refused, naming the package in the way.
    data = _with_firewall([_file("files/marker.txt", b"impostor\n")], version="1.10.0")
    assert_problem(c.post(f"{API}/vnf_packages", content=data, headers=GZ), 409,
                   "firewall 1.10.0", higher)
    # ... and so is the same version written another way (PEP 440: 1.10 is 1.10.0).
    data = _with_firewall([_file("files/marker.txt", b"impostor\n")], version="1.10")
    assert_problem(c.post(f"{API}/vnf_packages", content=data, headers=GZ), 409,
                   "1.10.0", higher)


def test_delete_a_package(c: httpx.Client) -> None:
    unused = _upload(c, "0.5", b"unused\n")
    r = c.delete(f"{API}/vnf_packages/{unused.upper()}")
    assert r.status_code == 204, r.text
    assert unused not in {p["sha256"] for p in c.get(f"{API}/vnf_packages").json()}
    assert_problem(c.delete(f"{API}/vnf_packages/{unused}"), 404, unused)
    assert_problem(c.delete(f"{API}/vnf_packages/nothex"), 422)
    # In use by an instance: refused, naming it, and the package stays.
    used = _firewall_of(c, "userc")
    assert_problem(c.delete(f"{API}/vnf_packages/{used}"), 409, "cpe1-userc-firewall")
    assert c.get(f"{API}/vnf_packages/{used}").status_code == 200


def test_the_only_package_of_an_nf_users_subscribe_to_stays(c: httpx.Client) -> None:
    shaper = [p for p in c.get(f"{API}/vnf_packages").json() if p["name"] == "rate-limiter"]
    assert len(shaper) == 1
    r = c.post(f"{API}/users", json={"name": "userd", "password": "secret1",
                                     "required_nfs": ["rate-limiter"]})
    assert r.status_code == 201, r.text
    assert_problem(c.delete(f"{API}/vnf_packages/{shaper[0]['sha256']}"), 409,
                   "only one of rate-limiter", "userd")
    assert c.get(f"{API}/vnf_packages/{shaper[0]['sha256']}").status_code == 200


def test_the_only_package_of_an_nf_users_hold_a_config_for_stays(c: httpx.Client) -> None:
    """Deleted, it left the users' nf_config pointing at nothing (probe of 2026-12-05)."""
    nat = [p for p in c.get(f"{API}/vnf_packages").json() if p["name"] == "nat"]
    assert len(nat) == 1
    r = c.post(f"{API}/users", json={"name": "userf", "password": "secret1",
                                     "nf_config": {"nat": {"address": "10.90.254.1/16"}}})
    assert r.status_code == 201, r.text
    assert_problem(c.delete(f"{API}/vnf_packages/{nat[0]['sha256']}"), 409,
                   "only one of nat", "userf", "config")
    assert c.get(f"{API}/vnf_packages/{nat[0]['sha256']}").status_code == 200


def test_the_troubleshooters_only_package_is_kept(c: httpx.Client) -> None:
    """Deleting it left every troubleshooting question failing ("probe ... did not come
    up": no bundle for NF 'troubleshooter'; probe of 2026-12-06): 409 while it is the
    only one."""
    shas = [p["sha256"] for p in c.get(f"{API}/vnf_packages").json()
            if p["name"] == "troubleshooter"]
    assert len(shas) == 1, shas
    assert_problem(c.delete(f"{API}/vnf_packages/{shas[0]}"), 409, "troubleshooter",
                   "POST /troubleshoot")
    assert c.get(f"{API}/vnf_packages/{shas[0]}").status_code == 200

