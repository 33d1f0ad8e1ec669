"""Issue #16, input 4, through the API: addresses that are not addresses (999.1.1.1, digits
of another script, broadcast and multicast MACs as a station's) and identifiers that are not
ours, in bodies and paths, get a 422 naming the field, and nothing is stored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.harness import assert_problem, one_node, unchanged

API = "/api/v1"
ARABIC_IP = "\u0661\u0660.\u0669\u0660.\u0661.\u0661"  # 10.90.1.1 in Arabic-Indic digits
A1 = "\u0661"  # Arabic-Indic one


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with one_node(tmp_path_factory.mktemp("addresses")) as (_, c):
        yield c


ASSOC = "/users/user1/associate"
BAD: list[tuple[str, str, Any, tuple[str, ...]]] = [
    # the examples
    ("POST", ASSOC, {"node": "cpe1", "ip": "999.1.1.1"}, ("ip",)),
    ("POST", ASSOC, {"node": "cpe1", "ip": ARABIC_IP}, ("ip", "ASCII")),
    ("POST", ASSOC, {"node": "cpe1", "mac": "ff:ff:ff:ff:ff:ff"}, ("mac", "group")),
    ("POST", ASSOC, {"node": "cpe1", "mac": "01:00:5e:00:00:01"}, ("mac", "group")),
    # the kind
    ("POST", ASSOC, {"node": "cpe1", "mac": "03:00:00:00:00:01"}, ("mac", "group")),
    ("POST", ASSOC, {"node": "cpe1", "mac": "00:00:00:00:00:00"}, ("mac",)),
    ("POST", ASSOC, {"node": "cpe1", "ip": "10.90.1.1\n"}, ("ip",)),
    ("POST", ASSOC, {"node": "cpe1", "ip": "010.90.1.1"}, ("ip",)),
    ("POST", ASSOC, {"node": "cpe1", "ip": "255.255.255.255"}, ("ip", "host")),
    ("POST", ASSOC, {"node": "cpe1", "ip": "224.0.0.1"}, ("ip", "host")),
    ("POST", ASSOC, {"node": "cpe1", "ip": 167772161}, ("ip",)),
    ("POST", ASSOC, {"node": "cpe" + A1}, ("node", "ASCII")),
    ("POST", ASSOC, {"node": "cpe1\n"}, ("node",)),
    ("POST", "/users", {"name": "user" + A1, "password": "secret2"}, ("name", "ASCII")),
    ("POST", "/users", {"name": "user2", "password": "secret2", "required_nfs": ["Fire wall"]},
     ("required_nfs",)),
    ("POST", "/users", {"name": "user2", "password": "secret2", "classifiers": [
        {"name": "web", "priority": 1, "ip_proto": 6, "remote": "10.0.0.0/2\u0664",
         "nfs": ["firewall"]}]}, ("remote", "ASCII")),
    ("POST", "/users", {"name": "user2", "password": "secret2", "classifiers": [
        {"name": "web", "priority": 1, "ip_proto": 6, "remote_port": "80",
         "nfs": ["firewall"]}]}, ("remote_port",)),
    ("POST", "/users", {"name": "user2", "password": "secret2", "classifiers": [
        {"name": "web", "priority": 1, "ip_proto": 6, "remote": "999.0.0.0/8",
         "nfs": ["firewall"]}]}, ("remote",)),
    ("POST", "/vnf_instances", {"nf": "firewall", "owner": "user" + A1, "node": "cpe1"},
     ("owner", "ASCII")),
    ("POST", "/vnf_instances", {"nf": "firewall", "owner": "user1", "node": "cpe" + A1},
     ("node",)),
    ("PUT", "/nodes/cpe1/ts_rules/r1", {"match": {"eth_src": "02:00:00:00:00:0" + A1}},
     ("eth_src", "ASCII")),
    ("PUT", "/nodes/cpe1/ts_rules/r1", {"match": {"ipv4_dst": ARABIC_IP}},
     ("ipv4_dst", "ASCII")),
    # identifiers in paths
    ("GET", "/users/a%00b", None, ("name",)),
    ("GET", "/users/user" + A1, None, ("name",)),
    ("GET", "/nodes/CPE1", None, ("name",)),
    ("POST", "/users/user" + A1 + "/associate", {"node": "cpe1"}, ("name",)),
    ("GET", "/vnf_instances/cpe1-user1-fw%0a", None, ("iid",)),
    ("PUT", "/nodes/cpe" + A1 + "/ts_rules/r1", {}, ("node",)),
    ("PUT", "/nodes/cpe1/ts_rules/r%201", {}, ("rule_id",)),
]


@pytest.mark.parametrize(("method", "path", "body", "words"), BAD,
                         ids=[f"{m} {p} {'/'.join(w)}" for m, p, _, w in BAD])
def test_not_an_address_gets_422_naming_the_field(client: httpx.Client, method: str, path: str,
                                                  body: Any, words: tuple[str, ...]) -> None:
    with unchanged(client):
        assert_problem(client.request(method, API + path, json=body), 422, *words)


def test_a_real_station_is_accepted_in_canonical_form(client: httpx.Client) -> None:
    r = client.post(API + ASSOC, json={"node": "cpe1", "mac": "02:AA:00:00:00:01",
                                       "ip": "10.90.1.5"})
    assert r.status_code == 202, r.text
    user = client.get(f"{API}/users/user1").json()
    assert (user["mac"], user["ip"]) == ("02:aa:00:00:00:01", "10.90.1.5")
