"""Bad input to the northbound API: each request gets a 4xx with an RFC 7807 problem body whose
detail names what is wrong, and nothing any list endpoint shows changes."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from netfate import catalogue
from netfate.drivers import node_files
from netfate.orchestrator.api.unique_keys import duplicate_key
from tests.api.conftest import MakeLive
from tests.api.harness import (
    AUTH,
    FakeAgent,
    LiveOrchestrator,
    LoopThread,
    assert_problem,
    running,
    unchanged,
    wait_op,
    wait_until,
)

API = "/api/v1"
FW_IID = "cpe1-user1-firewall"


@dataclass
class World:
    live: LiveOrchestrator
    client: httpx.Client


@pytest.fixture(scope="module")
def world_(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One orchestrator for this module's tests (each checks that it changes nothing): node
    cpe1 runs user1's firewall; node cpe2 lacks nftables and conntrack."""
    loop = LoopThread()
    agents: list[FakeAgent] = []
    try:
        with running(tmp_path_factory.mktemp("input")) as live, \
                httpx.Client(base_url=live.url, timeout=15, headers=AUTH) as c:
            for name, caps in (("cpe1", None), ("cpe2", ["bridge", "iproute2", "python3"])):
                agents.append(FakeAgent(loop, live.nats_url, name, capabilities=caps))
                agents[-1].start()
            r = c.post(f"{API}/users", json={"name": "user1", "password": "secret1"})
            assert r.status_code == 201, r.text
            r = c.post(f"{API}/vnf_instances", json={"nf": "firewall", "owner": "user1",
                                                      "node": "cpe1"})
            assert r.status_code == 202, r.text
            op = wait_op(c, r.json()["vnf_lcm_op_occs"][0])
            assert op["operation_state"] == "COMPLETED", op
            yield World(live, c)
            for a in agents:
                a.kill()
    finally:
        for a in agents:
            a.kill()
        loop.close()


@pytest.fixture
def seeded(world_: World) -> httpx.Client:
    return world_.client


# -- JSON bodies ------------------------------------------------------------------------------

JSON_ENDPOINTS = [
    ("POST", "/users"),
    ("PATCH", "/users/user1"),
    ("POST", "/users/user1/associate"),
    ("POST", "/vnf_instances"),
    ("POST", f"/vnf_instances/{FW_IID}/migrate"),
    ("PATCH", f"/vnf_instances/{FW_IID}"),
    ("POST", "/subscriptions"),
]
JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS)
@pytest.mark.parametrize("body", [b"{bad", b'{"node": "cpe1",}', b"\xff\xfe", b"{" * 50])
def test_malformed_json(seeded: httpx.Client, method: str, path: str, body: bytes) -> None:
    with unchanged(seeded):
        r = seeded.request(method, API + path, content=body, headers=JSON)
        assert_problem(r, 400, "malformed JSON")


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS)
@pytest.mark.parametrize("body", [b"[]", b'"text"', b"42", b"null"])
def test_body_not_an_object(seeded: httpx.Client, method: str, path: str, body: bytes) -> None:
    with unchanged(seeded):
        r = seeded.request(method, API + path, content=body, headers=JSON)
        assert_problem(r, 422, "JSON object", "not")


def test_body_without_content_type(seeded: httpx.Client) -> None:
    with unchanged(seeded):
        r = seeded.post(f"{API}/users", content=b"name=user2&password=secret2",
                        headers={"content-type": "application/x-www-form-urlencoded"})
        assert_problem(r, 415, "x-www-form-urlencoded", "application/json")


@pytest.mark.parametrize(("method", "path", "body"), [
    ("PATCH", "/users/user1", b'{"password": "abcdef"}'),
    ("POST", "/users", b'{"name": "user2", "password": "secret2"}'),
    ("POST", "/subscriptions", b'{"callbackUri": "http://127.0.0.1:9/x"}'),
])
@pytest.mark.parametrize(("headers", "words"), [
    ([("content-type", "text/plain")], ("'text/plain'",)),
    ([("content-type", "application/xml")], ("'application/xml'",)),
    ([("content-type", "application/json-patch+json")], ("json-patch+json",)),
    ([("content-type", "application/vnd.foo+json")], ("vnd.foo+json",)),
    ([("content-type", "application/json; charset=utf-16")], ("utf-16", "RFC 8259")),
    ([("content-type", "application/json"), ("content-type", "text/plain")],
     ("more than once",)),
    ([], ("needs one Content-Type",)),
])
def test_a_json_body_labelled_as_something_else_is_415(
        seeded: httpx.Client, method: str, path: str, body: bytes,
        headers: list[tuple[str, str]], words: tuple[str, ...]) -> None:
    """RFC 9110 §15.5.16: a body in a media type the route does not take is 415. Before,
    text/plain and XML got 422, while JSON Patch, any */*+json and charset=utf-16 were read
    as JSON (probe of 2026-12-06). JSON (and JSON Merge Patch, RFC 7396) are taken."""
    with unchanged(seeded):
        r = seeded.request(method, API + path, content=body, headers=headers)
        assert_problem(r, 415, *words)


def test_json_merge_patch_and_a_utf8_charset_are_taken(seeded: httpx.Client) -> None:
    for ctype in ("application/merge-patch+json", "application/json; charset=UTF-8"):
        r = seeded.patch(f"{API}/users/user1", content=b'{"nf_config": {}}',
                         headers={"content-type": ctype})
        assert r.status_code == 200, (ctype, r.text)


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e309"])
@pytest.mark.parametrize(("method", "path", "template"), [
    ("POST", "/users", b'{"name": "user2", "password": "secret2", "nf_config": '
                       b'{"firewall": {"x": %s}}}'),
    ("PATCH", "/users/user1", b'{"nf_config": {"firewall": {"x": [%s]}}}'),
    ("POST", "/vnf_instances", b'{"nf": "firewall", "owner": "user1", "node": "cpe2", '
                               b'"config": {"x": %s}}'),
    ("PATCH", f"/vnf_instances/{FW_IID}", b'{"config": {"x": %s}}'),
])
def test_non_finite_numbers_in_documents(seeded: httpx.Client, method: str, path: str,
                                         template: bytes, number: bytes) -> None:
    """Python's JSON reader takes NaN, Infinity and 1e309 (inf): no JSON numbers. A document
    holding one was stored with null in its place (or refused by PostgreSQL): now 422."""
    with unchanged(seeded):
        assert_problem(seeded.request(method, API + path, content=template % number,
                                      headers=JSON), 422, "not a JSON number")


@pytest.mark.parametrize(("method", "path", "body", "key"), [
    ("POST", "/users", b'{"name": "user2", "password": "secret2", "name": "user3"}', "name"),
    ("PATCH", "/users/user1", b'{"nf_config": {"firewall": {"default_out": "allow", '
                              b'"default_out": "deny"}}}', "default_out"),
    ("PUT", "/steering_rules/r1", b'{"priority": 1, "output": [], "priority": 60000}',
     "priority"),
    ("POST", "/vnf_instances", b'{"nf": "firewall", "owner": "user1", "node": "cpe2", '
                               b'"config": {"rules": [{"dport": 22, "dport": 80}]}}', "dport"),
    ("POST", "/subscriptions", b'{"callbackUri": "http://127.0.0.1:9/a", '
                               b'"callbackUri": "http://127.0.0.1:9/b"}', "callbackUri"),
])
def test_a_member_given_twice_in_one_object(seeded: httpx.Client, method: str, path: str,
                                            body: bytes, key: str) -> None:
    """JSON's readers disagree on `{"a": 1, "a": 2}` (Python keeps the last): what was
    checked or logged need not be what is stored. I-JSON (RFC 7493) forbids it: 422, naming
    the member, nothing changed. The same name in two objects is fine."""
    with unchanged(seeded):
        assert_problem(seeded.request(method, API + path, content=body, headers=JSON), 422,
                       repr(key), "twice")
    assert duplicate_key(b'{"rules": [{"dport": 22}, {"dport": 80}], "x": {"dport": 1}}') \
        is None
    assert duplicate_key(b'{"a": {"b": [{"c": 1, "c": 2}]}}') == "c"
    assert duplicate_key(b'{"a": 1,') is None  # not JSON: the route's parser says why (400)


@pytest.mark.parametrize(("method", "path", "body", "words"), [
    ("POST", "/users", b'{"name": "user2", "password": "secret2", "nf_config": '
                       b'{"\\ud800": {}}}', "lone surrogate (U+D800)"),
    ("PATCH", "/users/user1", b'{"nf_config": {"\\udfff": {}}}', "lone surrogate (U+DFFF)"),
    ("POST", "/vnf_instances", b'{"nf": "nat", "owner": "user1", "node": "cpe1", '
                               b'"config": {"address": "\\ud800"}}', "lone surrogate"),
    ("PATCH", "/users/user1", b'{"nf_config": {"firewall": {"rules": [{"comment": '
                              b'"a\\ud83d"}]}}}', "lone surrogate (U+D83D)"),
    ("POST", "/subscriptions", b'{"callbackUri": "http://127.0.0.1:9/\xef\xb7\x90"}',
     "noncharacter (U+FDD0)"),
])
def test_a_string_with_a_lone_surrogate_or_a_noncharacter(
        seeded: httpx.Client, method: str, path: str, body: bytes, words: str) -> None:
    """I-JSON (RFC 7493 §2.1): no lone surrogates (an escape like \\ud800 without its
    pair) and no noncharacters in JSON text. A lone surrogate cannot be encoded as UTF-8:
    a user's nf_config key or a config value holding one was a 500 (the database driver)
    or a 409 blaming the NF's package (the regular expression engine); probe of
    2026-12-06. Now 422 naming it, nothing changed."""
    with unchanged(seeded):
        assert_problem(seeded.request(method, API + path, content=body, headers=JSON), 422,
                       words, "RFC 7493")


def test_a_surrogate_pair_is_one_character_and_fine() -> None:
    from netfate.strict_json import unpaired_text
    assert unpaired_text({"a": ["\U0001f600", "é", {"k\u00e9": 1}]}) is None
    assert unpaired_text([[["\ud800"]]]) == "a lone surrogate (U+D800)"
    assert unpaired_text({"\uffff": 1}) == "a noncharacter (U+FFFF)"


BAD_BODIES: list[tuple[str, str, dict[str, Any], tuple[str, ...]]] = [
    # wrong types
    ("POST", "/users", {"name": 5, "password": "secret2"}, ("name", "string")),
    ("POST", "/users", {"name": "user2", "password": "secret2", "required_nfs": "firewall"},
     ("required_nfs", "list")),
    ("POST", "/users", {"name": "user2", "password": "secret2", "nf_config": {"fw": 1}},
     ("nf_config", "dictionary")),
    ("PATCH", "/users/user1", {"password": 1234}, ("password",)),
    ("POST", "/users/user1/associate", {"node": ["cpe1"]}, ("node",)),
    ("POST", "/users/user1/associate", {"node": "cpe1", "mac": "not-a-mac"}, ("mac",)),
    ("POST", "/users/user1/associate", {"node": "cpe1", "ip": "10.0.0"}, ("ip",)),
    ("POST", "/vnf_instances", {"nf": "firewall", "owner": "user1", "node": "cpe1",
                                "config": []}, ("config",)),
    ("PATCH", f"/vnf_instances/{FW_IID}", {"config": "allow"}, ("config",)),
    ("POST", f"/vnf_instances/{FW_IID}/migrate", {"node": 2}, ("node",)),
    ("POST", "/subscriptions", {"callbackUri": 7}, ("callbackUri",)),
    # values out of their range or pattern
    ("POST", "/users", {"name": "User Two", "password": "secret2"}, ("name", "pattern")),
    ("POST", "/users", {"name": "user2", "password": "abc"}, ("password", "4 characters")),
    ("POST", "/users", {"name": "a" * 33, "password": "secret2"}, ("name",)),
    # missing fields
    ("POST", "/users", {"name": "user2"}, ("password", "required")),
    ("POST", "/users", {}, ("name", "required")),
    ("POST", "/users/user1/associate", {}, ("node", "required")),
    ("POST", "/vnf_instances", {"nf": "firewall", "owner": "user1"}, ("node", "required")),
    ("POST", f"/vnf_instances/{FW_IID}/migrate", {}, ("node", "required")),
    ("PATCH", f"/vnf_instances/{FW_IID}", {}, ("config", "required")),
    ("POST", "/subscriptions", {}, ("callbackUri", "required")),
    # extra fields
    ("POST", "/users", {"name": "user2", "password": "secret2", "admin": True},
     ("admin", "extra")),
    ("PATCH", "/users/user1", {"name": "user9"}, ("name", "extra")),
    ("POST", "/users/user1/associate", {"node": "cpe1", "vlan": 3}, ("vlan", "extra")),
    ("POST", "/vnf_instances", {"nf": "firewall", "owner": "user1", "node": "cpe1",
                                "flavour": "vm"}, ("flavour", "extra")),
    ("POST", f"/vnf_instances/{FW_IID}/migrate", {"node": "cpe2", "force": True},
     ("force", "extra")),
    ("PATCH", f"/vnf_instances/{FW_IID}", {"config": {}, "node": "cpe2"}, ("node", "extra")),
    ("POST", "/subscriptions", {"callbackUri": "http://127.0.0.1:9/cb", "secret": "x"},
     ("secret", "extra")),
    # semantic checks past the schema
    ("POST", "/subscriptions", {"callbackUri": "ftp://127.0.0.1/cb"}, ("http",)),
    ("POST", "/subscriptions", {"callbackUri": "http://["}, ("callbackUri", "not a valid URL")),
    ("POST", "/subscriptions", {"callbackUri": "http://127.0.0.1:99999/"},
     ("callbackUri", "port")),
    ("POST", "/subscriptions", {"callbackUri": "http:///nohost"}, ("callbackUri", "host")),
    # what urlsplit drops or strips (and httpx then refuses at every notification)
    ("POST", "/subscriptions", {"callbackUri": "http://127.0.0.1:9/cb\n"},
     ("callbackUri", "control characters")),
    ("POST", "/subscriptions", {"callbackUri": "http://127.0.0.1:9/c\tb"},
     ("callbackUri", "control characters")),
    ("POST", "/subscriptions", {"callbackUri": " http://127.0.0.1:9/cb"},
     ("callbackUri", "white space")),
    ("POST", "/subscriptions", {"callbackUri": "http://127.0.0.1:9/c\x00b"},
     ("callbackUri", "control characters")),
    ("POST", "/subscriptions", {"callbackUri": "http://127.0.0.1:\uff18\uff10/cb"},
     ("callbackUri", "ASCII")),
    ("POST", "/subscriptions", {"callbackUri": "http://user:pass@127.0.0.1:9/cb"},
     ("callbackUri", "credentials")),
    ("POST", "/subscriptions", {"callbackUri": "http://127.0.0.1:9/cb#part"},
     ("callbackUri", "fragment")),
    ("POST", "/subscriptions", {"callbackUri": "http://127.0.0.1:9/cb#"},
     ("callbackUri", "fragment")),
    ("POST", "/subscriptions", {"callbackUri": "http://[::1%25lo]:9/cb"},
     ("callbackUri", "zone")),
    ("POST", "/subscriptions", {"callbackUri": "http://[fe80::1%eth0]/cb"},
     ("callbackUri", "zone")),
    ("POST", "/subscriptions", {"callbackUri": "http://127.0.0.1:9/%zz"},
     ("callbackUri", "two hex digits")),
    ("POST", "/subscriptions", {"callbackUri": "http://127.0.0.1:9/a%2"},
     ("callbackUri", "two hex digits")),
    ("POST", "/users", {"name": "user2", "password": "secret2",
                        "required_nfs": ["firewall", "packet-inspector"],
                        "classifiers": [{"name": "web", "priority": 5,
                                         "nfs": ["packet-inspector", "packet-inspector"]}]},
     ("nfs", "more than once")),
    ("POST", "/subscriptions", {"callbackUri": "http://127.0.0.1:0/cb"},
     ("callbackUri", "port 0")),
    ("POST", "/subscriptions", {"callbackUri": "http://10.1.2.3/cb"},
     ("callbackUri", "allowed networks")),
    ("POST", "/subscriptions", {"callbackUri": "https://example.com/cb"},
     ("callbackUri", "allowed networks")),
    # a subscription's filter (SOL003's operation types and states, instance ids): a value
    # of the wrong type ended every subscriber's notifications; a misspelt key matched all
    ("POST", "/subscriptions", {"callbackUri": "http://127.0.0.1:9/cb",
                                "filter": {"operationStates": 5}}, ("operationStates",)),
    ("POST", "/subscriptions", {"callbackUri": "http://127.0.0.1:9/cb",
                                "filter": {"operationStates": "FAILED_TEMP"}},
     ("operationStates",)),
    ("POST", "/subscriptions", {"callbackUri": "http://127.0.0.1:9/cb",
                                "filter": {"operationStates": ["DONE"]}},
     ("operationStates", "COMPLETED")),
    ("POST", "/subscriptions", {"callbackUri": "http://127.0.0.1:9/cb",
                                "filter": {"operationState": ["COMPLETED"]}},
     ("operationState", "extra")),
    ("POST", "/subscriptions", {"callbackUri": "http://127.0.0.1:9/cb",
                                "filter": {"operationTypes": ["INSTANTIATE", 1]}},
     ("operationTypes",)),
    ("POST", "/subscriptions", {"callbackUri": "http://127.0.0.1:9/cb",
                                "filter": {"vnfInstanceIds": ["../x"]}}, ("vnfInstanceIds",)),
    ("POST", "/subscriptions", {"callbackUri": "http://127.0.0.1:9/cb", "filter": {
        "operationTypes": ["INSTANTIATE", "INSTANTIATE"]}}, ("INSTANTIATE", "more than once")),
    # what the catalogue NFs' own checks refuse beyond their schemas (probe of 12-03)
    ("POST", "/users", {"name": "user2", "password": "secret2", "nf_config": {
        "content-filter": {"custom_categories": {"adult": ["x.example"]}}}},
     ("nf_config.content-filter", "built-in")),
    ("POST", "/users", {"name": "user2", "password": "secret2", "nf_config": {"vpn": {
        "address": "10.2.0.1/24", "gateway": "10.2.0.254", "peer": "10.2.0.1",
        "local_ts": ["10.2.0.0/24"], "psk_file": f"{node_files.owner_dir('user2')}/psk"}}},
     ("nf_config.vpn", "peer")),
    # a node file outside the owner's own: another tenant's key, the node's, by ".."
    *(("POST", "/users", {"name": "user2", "password": "secret2", "nf_config": {"vpn": {
        "address": "10.2.0.1/24", "gateway": "10.2.0.254", "peer": "10.2.0.9",
        "local_ts": ["10.2.0.0/24"], "psk_file": f}}},
       ("nf_config.vpn", "psk_file", "may name only files in"))
      for f in (f"{node_files.owner_dir('user1')}/psk", "/etc/shadow",
                f"{node_files.owner_dir('user2')}/../user1/psk")),
    ("PATCH", "/users/user1", {"nf_config": {"vpn": {
        "address": "10.2.0.1/24", "gateway": "10.2.0.254", "peer": "10.2.0.9",
        "local_ts": ["10.2.0.0/24"], "psk_file": f"{node_files.owner_dir('user2')}/psk"}}},
     ("nf_config.vpn", "psk_file", "user2")),
    ("POST", "/subscriptions", {"callbackUri": "http://127.0.0.1:9/cb",
                                "filter": {"vnfInstanceIds": [f"i{k}" for k in range(1001)]}},
     ("vnfInstanceIds", "1000")),
    # a user's per-NF config, checked against the NF's schema as an instance's is (it was
    # stored, and failed on the node at the user's login)
    ("POST", "/users", {"name": "user2", "password": "secret2", "required_nfs": ["firewall"],
                        "nf_config": {"firewall": {"rules": [{"action": "deny", "proto": "tcp",
                                                              "dport": 0}]}}},
     ("nf_config.firewall", "dport")),
    ("POST", "/users", {"name": "user2", "password": "secret2",
                        "nf_config": {"firewall": {"rules": [{"action": "deny", "proto": "tcp",
                                                              "dport": 23.0}]}}},
     ("nf_config.firewall", "integer")),
    ("POST", "/users", {"name": "user2", "password": "secret2",
                        "nf_config": {"nosuchnf": {}}}, ("nf_config.nosuchnf", "unknown NF")),
    ("PATCH", "/users/user1", {"nf_config": {"firewall": {"rules": "notalist"}}},
     ("nf_config.firewall", "rules")),
    ("PATCH", "/users/user1", {"nf_config": {"firewall": {"default_in": "maybe"}}},
     ("nf_config.firewall", "default_in")),
    # a key the platform sets (readOnly in the NF's schema): a shared firewall's tenants
    ("POST", "/users", {"name": "user2", "password": "secret2", "required_nfs": ["firewall"],
                        "nf_config": {"firewall": {"tenants": [{"user": "user1",
                                                                "vlan": 7}]}}},
     ("nf_config.firewall", "'tenants'", "platform")),
    ("PATCH", "/users/user1", {"nf_config": {"firewall": {"tenants": []}}},
     ("nf_config.firewall", "'tenants'", "platform")),
    # what the schema cannot say, the NF's own check-config refuses (it was stored, and the
    # NAT failed on the node at the user's login)
    ("POST", "/users", {"name": "user2", "password": "secret2", "required_nfs": ["nat"],
                        "nf_config": {"nat": {"address": "10.90.254.1/16", "port_min": 3000,
                                              "port_max": 2000}}},
     ("nf_config.nat", "port_min (3000) is above port_max (2000)")),
    ("PATCH", "/users/user1", {"nf_config": {"load-balancer": {
        "address": "10.90.253.1/16", "services": [
            {"name": "w", "vip": "10.90.253.10", "port": 80, "proto": "tcp",
             "backends": [{"address": "10.91.0.5", "port": 80}]}]}}},
     ("nf_config.load-balancer", "outside")),
    # TS rules (Table I), checked as the controller's model checks them
    ("PUT", "/nodes/cpe1/ts_rules/r1", {"match": {"tp_dst": 80}}, ("ip_proto",)),
    ("PUT", "/nodes/cpe1/ts_rules/r1", {"match": {"eth_src": "not-a-mac"}}, ("eth_src",)),
    ("PUT", "/nodes/cpe1/ts_rules/r1", {"match": {"vlan": 3}}, ("vlan",)),
    ("PUT", "/nodes/cpe1/ts_rules/r1", {"priority": 0}, ("priority",)),
    ("PUT", "/nodes/cpe1/ts_rules/r1", {"output": "uplink"}, ("output",)),
    ("PUT", "/nodes/cpe1/ts_rules/r1", {"output": ["a"], "cookie": 1}, ("cookie", "extra")),
    ("POST", "/nodes/cpe1/ts_rules", [{"rule_id": "r1", "match": {"tp_dst": 80}}],  # type: ignore[list-item]
     ("ip_proto",)),
    ("POST", "/nodes/cpe1/ts_rules", [{"rule_id": "r1"}, {"rule_id": "r1"}],  # type: ignore[list-item]
     ("twice",)),
    # booleans, strings and floats where a JSON integer or boolean is expected (pydantic's
    # lax mode read `true` as 1, "5" as 5, 0 and "false" as false)
    ("PUT", "/nodes/cpe1/ts_rules/r1", {"priority": True}, ("priority", "integer")),
    ("PUT", "/nodes/cpe1/ts_rules/r1", {"priority": "5"}, ("priority", "integer")),
    ("PUT", "/nodes/cpe1/ts_rules/r1", {"priority": 5.0}, ("priority", "integer")),
    ("PUT", "/nodes/cpe1/ts_rules/r1", {"match": {"ip_proto": True}}, ("ip_proto",)),
    ("PUT", "/nodes/cpe1/ts_rules/r1", {"match": {"ip_proto": 6, "tp_dst": "80"}},
     ("tp_dst",)),
    ("PUT", "/nodes/cpe1/ts_rules/r1", {"match": {"eth_type": "2048"}}, ("eth_type",)),
    ("POST", "/nodes/cpe1/ts_rules", [{"rule_id": "r1", "priority": True}],  # type: ignore[list-item]
     ("priority", "integer")),
    # OpenFlow prerequisites a switch would refuse, and ids no URL path reaches (probe of
    # 2026-12-05: each was taken, 200)
    ("PUT", "/nodes/cpe1/ts_rules/r1", {"match": {"eth_type": 34525, "ipv4_src": "10.0.0.1"}},
     ("ipv4_src", "eth_type 2048")),
    ("PUT", "/nodes/cpe1/ts_rules/r1", {"match": {"eth_type": 2054, "ip_proto": 6,
                                                  "tp_dst": 1}}, ("ip_proto needs eth_type",)),
    ("PUT", "/nodes/cpe1/ts_rules/r1", {"match": {"eth_src": "ff:ff:ff:ff:ff:ff"}},
     ("eth_src", "group address")),
    ("PUT", "/nodes/cpe1/ts_rules/%2E", {}, ("rule_id", "URL path")),
    ("POST", "/nodes/cpe1/ts_rules", [{"rule_id": "a/b"}], ("'a/b'", "URL path")),  # type: ignore[list-item]
    ("POST", "/nodes/cpe1/ts_rules", [{"rule_id": ".."}], ("'..'", "URL path")),  # type: ignore[list-item]
    ("POST", "/nodes/cpe1/ts_rules", [{"rule_id": "a%2Fb"}], ("'a%2Fb'", "URL path")),  # type: ignore[list-item]
    ("POST", "/nodes/cpe1/ts_rules", [{"rule_id": "a\\b"}], ("URL path",)),  # type: ignore[list-item]
    ("POST", "/nodes/cpe1/ts_rules", [{"rule_id": "ok1"}, {"rule_id": "bad", "priority": 0}],  # type: ignore[list-item]
     ("TS rule #1 'bad'", "priority")),
    ("POST", "/users/user1/associate", {"node": "cpe1", "login": 1}, ("login", "boolean")),
    ("POST", "/users/user1/associate", {"node": "cpe1", "login": "yes"}, ("login",)),
    ("POST", "/users/user1/associate", {"node": "cpe1", "login": True,
                                        "session_timeout": True}, ("session_timeout",)),
    ("PATCH", "/nodes/cpe1", {"admin_down": "false"}, ("admin_down", "boolean")),
    ("PATCH", "/nodes/cpe1", {"admin_down": 0}, ("admin_down", "boolean")),
    ("POST", "/users", {"name": "user2", "password": "secret2", "required_nfs": ["firewall"],
                        "classifiers": [{"name": "web", "priority": True,
                                         "nfs": ["firewall"]}]}, ("priority",)),
    ("POST", "/users", {"name": "user2", "password": "secret2", "required_nfs": ["firewall"],
                        "classifiers": [{"name": "web", "priority": 5, "ip_proto": "6",
                                         "nfs": ["firewall"]}]}, ("ip_proto",)),
]


@pytest.mark.parametrize(("method", "path", "body", "words"), BAD_BODIES,
                         ids=[f"{m} {p} {'/'.join(w)}" for m, p, _, w in BAD_BODIES])
def test_invalid_body(seeded: httpx.Client, method: str, path: str, body: dict[str, Any],
                      words: tuple[str, ...]) -> None:
    with unchanged(seeded):
        assert_problem(seeded.request(method, API + path, json=body), 422, *words)


def test_over_large_body(seeded: httpx.Client, world_: World) -> None:
    limit = world_.live.settings.max_json_bytes  # JSON bodies; bundle uploads: max_body_bytes
    big = b'{"name": "user2", "password": "' + b"x" * limit + b'"}'
    upload = world_.live.settings.max_body_bytes
    with unchanged(seeded):
        # Announced by Content-Length: refused before it is read.
        assert_problem(seeded.post(f"{API}/users", content=big, headers=JSON), 413,
                       str(limit))
        # Streamed (chunked, no length): refused once past the limit, also as 413.
        chunks = (big[i:i + (1 << 16)] for i in range(0, len(big), 1 << 16))
        assert_problem(seeded.post(f"{API}/users", content=chunks, headers=JSON), 413,
                       str(limit))
        assert_problem(seeded.post(f"{API}/vnf_packages", content=b"x" * (upload + 1)), 413,
                       str(upload))
    # A body just under the limit is read (and refused for what it is, not its size).
    r = seeded.post(f"{API}/users", content=b'{"name": "user2", "password": "' +
                    b"x" * 300 + b'"}', headers=JSON)
    assert_problem(r, 422, "password")


# -- unknown ids ------------------------------------------------------------------------------

UNKNOWN = [
    ("GET", "/nodes/nonode/ts_rules", None, ("node", "nonode")),
    ("PUT", "/nodes/nonode/ts_rules/r1", {}, ("node", "nonode")),
    ("GET", "/nodes/cpe1/ts_rules/nope", None, ("TS rule", "nope")),
    ("DELETE", "/nodes/cpe1/ts_rules/nope", None, ("TS rule", "nope")),
    ("GET", "/users/nobody", None, ("user", "nobody")),
    ("PATCH", "/users/nobody", {"password": "secret9"}, ("user", "nobody")),
    ("DELETE", "/users/nobody", None, ("user", "nobody")),
    ("POST", "/users/nobody/associate", {"node": "cpe1"}, ("user", "nobody")),
    ("POST", "/users/nobody/idle", None, ("user", "nobody")),
    ("GET", "/nodes/nonode", None, ("node", "nonode")),
    ("GET", "/vnf_instances/no-such-nf", None, ("instance", "no-such-nf")),
    ("PATCH", "/vnf_instances/no-such-nf", {"config": {}}, ("instance", "no-such-nf")),
    ("POST", "/vnf_instances/no-such-nf/terminate", None, ("instance", "no-such-nf")),
    ("POST", "/vnf_instances/no-such-nf/migrate", {"node": "cpe1"}, ("instance", "no-such-nf")),
    ("PUT", "/vnf_instances/no-such-nf/mute", None, ("instance", "no-such-nf")),
    ("DELETE", "/vnf_instances/no-such-nf/mute", None, ("instance", "no-such-nf")),
    ("GET", "/vnf_lcm_op_occs/00000000-0000-0000-0000-000000000000", None,
     ("operation", "00000000-0000-0000-0000-000000000000")),
    ("POST", "/notifications/4242/ack", None, ("notification", "4242")),
    ("DELETE", "/notifications/4242", None, ("notification", "4242")),
    ("DELETE", "/subscriptions/no-such-sub", None, ("subscription", "no-such-sub")),
    ("GET", "/vnf_packages/" + "ab" * 32, None, ("bundle", "ab" * 32)),
    ("GET", "/vnf_packages/" + "ab" * 32 + "/content", None, ("bundle",)),
    ("GET", "/no/such/path", None, ("no such path",)),
]


@pytest.mark.parametrize(("method", "path", "body", "words"), UNKNOWN,
                         ids=[f"{m} {p}" for m, p, _, _ in UNKNOWN])
def test_unknown_id(seeded: httpx.Client, method: str, path: str, body: dict[str, Any] | None,
                    words: tuple[str, ...]) -> None:
    with unchanged(seeded):
        assert_problem(seeded.request(method, API + path, json=body), 404, *words)


@pytest.mark.parametrize("nid", ["0", "-3", "abc", "99999999999999999999",
                                 "9223372036854775808", "2147483648",
                                 # another spelling of 1 (acknowledged 1: probe of 2026-12-06)
                                 "01", "+1", "%201", "1.0", "1e0"])
def test_notification_id_out_of_range(seeded: httpx.Client, nid: str) -> None:
    """Ids past the INTEGER column (32-bit on PostgreSQL) are refused, not a driver error."""
    with unchanged(seeded):
        assert_problem(seeded.post(f"{API}/notifications/{nid}/ack"), 422, "nid")
        assert_problem(seeded.delete(f"{API}/notifications/{nid}"), 422, "nid")


def test_a_required_nf_needs_the_config_its_schema_asks_for(seeded: httpx.Client) -> None:
    """The VPN's config-schema requires `address` and more: a user requiring it without
    that config was stored, and a logged-in user whose chain gained it lost their
    connectivity when its placement failed (third probe of 2026-12-06)."""
    with unchanged(seeded):
        assert_problem(seeded.post(f"{API}/users", json={
            "name": "user9", "password": "secret9", "required_nfs": ["firewall", "vpn"]}),
            422, "required_nfs", "vpn", "address", "nf_config.vpn")
        assert_problem(seeded.patch(f"{API}/users/user1", json={
            "required_nfs": ["firewall", "vpn"]}), 422, "vpn", "address")
    # the firewall needs none: still taken
    r = seeded.patch(f"{API}/users/user1", json={"required_nfs": ["firewall"]})
    assert r.status_code == 200, r.text


def test_bad_query_values(seeded: httpx.Client) -> None:
    with unchanged(seeded):
        assert_problem(seeded.get(f"{API}/vnf_lcm_op_occs", params={"state": "BOGUS"}), 422,
                       "state", "PROCESSING")
        assert_problem(seeded.get(f"{API}/notifications", params={"acknowledged": "maybe"}),
                       422, "acknowledged")
        assert_problem(seeded.post(f"{API}/vnf_packages", params={"sha256": "xyz"},
                                   content=b"x"), 422, "sha256")


def test_head_is_get_without_content(seeded: httpx.Client) -> None:
    """RFC 9110 §9.3.2: HEAD answers with the GET's status and header fields, no content;
    it answered 405 (probe of 2026-12-05)."""
    for path in ("/users", "/vnf_packages", "/health", "/vnf_lcm_op_occs",
                 "/users/nobody", "/vnf_instances?bogus=1"):
        get, head = seeded.get(f"{API}{path}"), seeded.head(f"{API}{path}")
        assert head.status_code == get.status_code, (path, head.status_code, get.text)
        assert head.content == b"", path
        assert head.headers.get("content-type") == get.headers.get("content-type"), path
        assert head.headers.get("content-length") == get.headers.get("content-length"), path
    # A stream answers its start and ends, its producer stopped (no hang).
    r = seeded.head(f"{API}/events", timeout=5)
    assert r.status_code == 200 and r.content == b"", r
    assert r.headers["content-type"].startswith("text/event-stream"), r.headers
    # A POST-only resource still says which methods it takes.
    r = seeded.head(f"{API}/users/user1/associate")
    assert r.status_code == 405 and "POST" in r.headers["allow"], r.headers


def test_unknown_query_on_health_and_cluster(seeded: httpx.Client) -> None:
    for path in ("/health", "/cluster"):
        assert_problem(seeded.get(f"{API}{path}", params={"verbose": "1"}), 422, "verbose",
                       path)


def test_method_not_allowed(seeded: httpx.Client) -> None:
    with unchanged(seeded):
        r = seeded.put(f"{API}/users", json={})
        body = assert_problem(r, 405, "PUT", "allowed", "GET", "POST")
        assert "GET" in r.headers["allow"], (r.headers, body)


# -- the catalogue ----------------------------------------------------------------------------

def _tgz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = 0o755
    return info, data


def _with_firewall(extra: list[tuple[tarfile.TarInfo, bytes | None]],
                   version: str | None = None) -> bytes:
    """The firewall bundle's members plus `extra` (its descriptor saying `version`)."""
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    with tarfile.open(fileobj=io.BytesIO(catalogue.bundle_bytes("firewall")), mode="r:gz") as t:
        for m in t.getmembers():
            fh = t.extractfile(m) if m.isfile() else None
            data = fh.read() if fh else None
            if version is not None and m.name == "descriptor.yaml" and data is not None:
                data = data.replace(b'version: "1.0.0"', f'version: "{version}"'.encode())
                m.size = len(data)
            members.append((m, data))
    return _tgz(members + extra)


def _link(name: str, target: str, hard: bool = False) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info, None


BAD_BUNDLES = {
    "not-gzip": (b"hello, not a tarball", ("not a readable .tgz",)),
    "gzip-not-tar": (b"\x1f\x8b\x08\x00" + b"\x00" * 40, ("not a readable .tgz",)),
    "dotdot": (_with_firewall([_file("../evil.sh", b"#!/bin/sh\n")]), ("'..'",)),
    "dotdot-inside": (_with_firewall([_file("scripts/../../x", b"x")]), ("'..'",)),
    "absolute": (_with_firewall([_file("/etc/evil", b"x")]), ("absolute",)),
    "symlink": (_with_firewall([_link("files/passwd", "/etc/passwd")]), ("link",)),
    "hardlink": (_with_firewall([_link("files/x", "descriptor.yaml", hard=True)]), ("link",)),
    "no-descriptor": (_tgz([_file("scripts/create", b"#!/bin/sh\n")]), ("descriptor.yaml",)),
    "bad-yaml": (_tgz([_file("descriptor.yaml", b"name: [unclosed")]), ("YAML",)),
    # accepted once, then unextractable on the node (File exists, File name too long)
    "file-then-child": (_with_firewall([_file("x", b"x"), _file("x/y", b"y")]),
                        ("'x/y'", "is a file")),
    "long-name": (_with_firewall([_file("f" * 256, b"x")]), ("255 bytes",)),
}


@pytest.mark.parametrize("kind", sorted(BAD_BUNDLES))
def test_bad_bundle(seeded: httpx.Client, kind: str) -> None:
    data, words = BAD_BUNDLES[kind]
    with unchanged(seeded):
        r = seeded.post(f"{API}/vnf_packages", content=data,
                        headers={"content-type": "application/gzip"})
        assert_problem(r, 422, *words)


def test_other_bytes_under_a_packages_name_and_version_are_refused(
        seeded: httpx.Client) -> None:
    """They took the catalogue firewall's place as the newest package (probe, 12-03)."""
    data = _with_firewall([_file("files/extra.txt", b"a change\n")])
    with unchanged(seeded):
        assert_problem(seeded.post(f"{API}/vnf_packages", content=data), 409,
                       "firewall 1.0.0", "another version")


def test_bundle_sha256_mismatch(seeded: httpx.Client) -> None:
    data = _with_firewall([_file("files/extra.txt", b"a new version\n")], version="1.0.1")
    real = hashlib.sha256(data).hexdigest()
    wrong = hashlib.sha256(b"something else").hexdigest()
    with unchanged(seeded):
        r = seeded.post(f"{API}/vnf_packages", params={"sha256": wrong}, content=data)
        assert_problem(r, 422, "sha256", real, wrong)
    # With the right sha256 (any case) it is taken, and fetched back byte for byte.
    r = seeded.post(f"{API}/vnf_packages", params={"sha256": real.upper()}, content=data)
    assert r.status_code == 201, r.text
    assert r.json()["sha256"] == real
    got = seeded.get(f"{API}/vnf_packages/{real}/content")
    assert got.status_code == 200 and got.content == data


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/users/user1/idle"), ("POST", "/checkpoints"), ("POST", "/users/user1/logout"),
    ("POST", "/vnf_instances/cpe1-user1-firewall/terminate"), ("DELETE", "/users/user1"),
    ("PUT", "/vnf_instances/cpe1-user1-firewall/mute")])
@pytest.mark.parametrize("body", [b"{{{", b'{"force": true}', b"x"])
def test_a_body_where_a_route_takes_none_is_refused(seeded: httpx.Client, method: str,
                                                    path: str, body: bytes) -> None:
    """It was ignored, so `{{{` looked accepted (probe, 2026-12-04)."""
    with unchanged(seeded):
        r = seeded.request(method, API + path, content=body,
                           headers={"content-type": "application/json"})
        assert_problem(r, 422, "takes no request body")


@pytest.mark.parametrize("media", ["application/json", "text/plain", "multipart/form-data"])
def test_a_bundle_declared_as_something_else_is_415(seeded: httpx.Client, media: str) -> None:
    """application/json said "not UTF-8" (probe, 2026-12-04): what the body must be, instead."""
    data = _with_firewall([_file("files/extra.txt", b"media\n")], version="1.0.2")
    with unchanged(seeded):
        r = seeded.post(f"{API}/vnf_packages", content=data, headers={"content-type": media})
        assert_problem(r, 415, media, "application/gzip")
        assert r.json()["title"] == "Unsupported Media Type"


@pytest.mark.parametrize("media", ["application/x-www-form-urlencoded", "application/x-tar",
                                   "application/x-gtar", None])
def test_a_bundle_sent_as_raw_bytes_is_taken_whatever_the_tool_calls_it(
        seeded: httpx.Client, media: str | None) -> None:
    """`curl --data-binary @fw.tgz` says application/x-www-form-urlencoded (review,
    2026-12-05: 415 for it): raw bytes are judged by the tar reader, not by their label."""
    data = _with_firewall([_file("files/extra.txt", media.encode() if media else b"-")],
                          version=f"1.0.{3 + len(media or '')}")
    headers = {"content-type": media} if media else {}
    r = seeded.post(f"{API}/vnf_packages", content=data, headers=headers)
    assert r.status_code == 201, r.text


def test_empty_bundle(seeded: httpx.Client) -> None:
    with unchanged(seeded):
        assert_problem(seeded.post(f"{API}/vnf_packages", content=b""), 422, "empty")


# -- users ------------------------------------------------------------------------------------

def test_user_requiring_unknown_nf(seeded: httpx.Client) -> None:
    with unchanged(seeded):
        r = seeded.post(f"{API}/users", json={"name": "user2", "password": "secret2",
                                              "required_nfs": ["firewall", "teleporter"]})
        assert_problem(r, 422, "teleporter", "firewall")  # names the unknown and the known
        r = seeded.patch(f"{API}/users/user1", json={"required_nfs": ["teleporter"]})
        assert_problem(r, 422, "teleporter")


def test_user_bad_nf_config(seeded: httpx.Client) -> None:
    with unchanged(seeded):
        r = seeded.post(f"{API}/users", json={"name": "user2", "password": "secret2",
                                              "nf_config": {"Bad Name": {}}})
        assert_problem(r, 422, "Bad Name")
        r = seeded.post(f"{API}/users", json={"name": "user2", "password": "secret2",
                                              "required_nfs": ["firewall", "firewall"]})
        assert_problem(r, 422, "twice")


def test_duplicate_user(seeded: httpx.Client) -> None:
    with unchanged(seeded):
        r = seeded.post(f"{API}/users", json={"name": "user1", "password": "other-secret"})
        assert_problem(r, 409, "user1", "exists")


def test_delete_user_owning_nfs(seeded: httpx.Client) -> None:
    with unchanged(seeded):
        assert_problem(seeded.delete(f"{API}/users/user1"), 409, "user1", "NF instance")


def test_associate_at_unknown_node(seeded: httpx.Client) -> None:
    with unchanged(seeded):
        r = seeded.post(f"{API}/users/user1/associate", json={"node": "cpe9"})
        assert_problem(r, 404, "cpe9")


# -- NF instances -----------------------------------------------------------------------------

def test_instantiate_unknown_nf_user_node(seeded: httpx.Client) -> None:
    with unchanged(seeded):
        r = seeded.post(f"{API}/vnf_instances",
                        json={"nf": "teleporter", "owner": "user1", "node": "cpe1"})
        assert_problem(r, 422, "teleporter", "firewall")
        r = seeded.post(f"{API}/vnf_instances",
                        json={"nf": "rate-limiter", "owner": "nobody", "node": "cpe1"})
        assert_problem(r, 404, "nobody")
        r = seeded.post(f"{API}/vnf_instances",
                        json={"nf": "rate-limiter", "owner": "user1", "node": "cpe9"})
        assert_problem(r, 404, "cpe9")


def test_instantiate_twice(seeded: httpx.Client) -> None:
    with unchanged(seeded):
        r = seeded.post(f"{API}/vnf_instances",
                        json={"nf": "firewall", "owner": "user1", "node": "cpe1"})
        assert_problem(r, 409, FW_IID, "exists")


@pytest.mark.parametrize(("config", "words"), [
    ({"default_in": "maybe"}, ("default_in", "maybe")),
    ({"rules": [{"action": "allow", "dport": 70000}]}, ("rules/0/dport",)),
    ({"rules": [{"action": "allow", "src": "10.0.0.300"}]}, ("rules/0/src",)),
    ({"unknown_knob": 1}, ("unknown_knob",)),
    ({"rules": [{"action": "allow", "proto": "icmp", "dport": 22}]}, ("rules/0",)),
    ({"tenants": [{"user": "user1", "vlan": 7}]}, ("'tenants'", "platform")),
])
def test_bad_config(seeded: httpx.Client, config: dict[str, Any],
                    words: tuple[str, ...]) -> None:
    """Config is validated against the descriptor's config-schema, on create and update."""
    with unchanged(seeded):
        r = seeded.post(f"{API}/vnf_instances",
                        json={"nf": "firewall", "owner": "user1", "node": "cpe1",
                              "config": config})
        assert_problem(r, 422, "firewall", *words)  # checked before "already exists"
        assert_problem(seeded.patch(f"{API}/vnf_instances/{FW_IID}", json={"config": config}),
                       422, "firewall", *words)


def test_migrate_to_unknown_node(seeded: httpx.Client) -> None:
    with unchanged(seeded):
        r = seeded.post(f"{API}/vnf_instances/{FW_IID}/migrate", json={"node": "cpe9"})
        assert_problem(r, 404, "cpe9")


def test_migrate_to_same_node(seeded: httpx.Client) -> None:
    with unchanged(seeded):
        r = seeded.post(f"{API}/vnf_instances/{FW_IID}/migrate", json={"node": "cpe1"})
        assert_problem(r, 409, "cpe1")


def test_migrate_to_node_without_capability(seeded: httpx.Client) -> None:
    with unchanged(seeded):
        r = seeded.post(f"{API}/vnf_instances/{FW_IID}/migrate", json={"node": "cpe2"})
        assert_problem(r, 409, "cpe2", "nftables", "conntrack", "firewall")
        r = seeded.post(f"{API}/vnf_instances",
                        json={"nf": "firewall", "owner": "user1", "node": "cpe2"})
        assert_problem(r, 409, "cpe2", "nftables")


def test_instantiate_on_offline_node(make_live: MakeLive, loop: LoopThread) -> None:
    live = make_live(node_timeout=1.0, reconcile_interval=0.2)
    agent = FakeAgent(loop, live.nats_url, "cpe3")
    try:
        agent.start()
        with httpx.Client(base_url=live.url, timeout=15, headers=AUTH) as c:
            assert c.post(f"{API}/users", json={"name": "user1",
                                                "password": "secret1"}).status_code == 201
            # No telemetry from the agent: the node goes offline after node_timeout.
            wait_until(lambda: not c.get(f"{API}/nodes/cpe3").json()["online"], 10,
                       "cpe3 to be marked offline")
            with unchanged(c):
                r = c.post(f"{API}/vnf_instances",
                           json={"nf": "firewall", "owner": "user1", "node": "cpe3"})
                assert_problem(r, 409, "cpe3", "offline")
            # Back online (telemetry), the same request is taken.
            agent.telemetry()
            wait_until(lambda: c.get(f"{API}/nodes/cpe3").json()["online"], 10,
                       "cpe3 to be back online")
            r = c.post(f"{API}/vnf_instances",
                       json={"nf": "firewall", "owner": "user1", "node": "cpe3"})
            assert r.status_code == 202, r.text
            assert wait_op(c, r.json()["vnf_lcm_op_occs"][0])["operation_state"] == "COMPLETED"
    finally:
        agent.kill()


def test_mute_unmute_known_instance(seeded: httpx.Client) -> None:
    assert seeded.put(f"{API}/vnf_instances/{FW_IID}/mute").status_code == 204
    assert seeded.put(f"{API}/vnf_instances/{FW_IID}/mute").status_code == 204  # idempotent
    assert seeded.delete(f"{API}/vnf_instances/{FW_IID}/mute").status_code == 204
    assert seeded.delete(f"{API}/vnf_instances/{FW_IID}/mute").status_code == 204


def test_a_bug_is_still_a_problem_body(make_live: MakeLive) -> None:
    """An unexpected exception is a 500 problem body naming no internals but its type."""
    live = make_live()

    def boom() -> None:
        raise RuntimeError("secret internals")

    live.app.add_api_route("/api/v1/test-boom", boom)
    with httpx.Client(base_url=live.url, timeout=15, headers=AUTH) as c:
        for _ in range(2):  # the keep-alive connection survives it
            body = assert_problem(c.get(f"{API}/test-boom"), 500, "RuntimeError", "test-boom")
            assert "secret" not in body["detail"]
        assert c.get(f"{API}/health").status_code == 200


def test_ts_rules_round_trip(seeded: httpx.Client) -> None:
    """Table I over the API: create (or replace), read, delete; a node's list only."""
    base = f"{API}/nodes/cpe1/ts_rules"
    rule = {"priority": 10, "match": {"in_port": "a", "ip_proto": 6, "tp_dst": 80},
            "output": ["b"]}
    r = seeded.put(f"{base}/web", json=rule, params={"wait": 0})
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in ("rule_id", "priority", "match", "output")} == {
        "rule_id": "web", **rule}
    r = seeded.post(base, json=[{"rule_id": "web", "output": []}, {"rule_id": "x:1"}],
                    params={"wait": 0})
    assert r.status_code == 200, r.text
    assert [(x["rule_id"], x["output"]) for x in seeded.get(base).json()] == [
        ("web", []), ("x:1", [])]
    assert seeded.get(f"{API}/nodes/cpe2/ts_rules").json() == []
    assert seeded.delete(f"{base}/web", params={"wait": 0}).json()["deleted"] == 1
    r = seeded.delete(base, params={"rule_id": ["x:1", "gone"], "wait": 0})
    assert r.json()["deleted"] == 1 and seeded.get(base).json() == []


def test_a_body_framed_two_ways_or_encoded_is_refused(seeded: httpx.Client) -> None:
    """Content-Length with Transfer-Encoding created the user (request smuggling behind a
    proxy that reads the other header); a gzip Content-Encoding on a plain body was read as
    it was (probe of 2026-12-03)."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(str(seeded.base_url))
    token = seeded.headers.get("authorization") or ""
    if not token and seeded.auth is not None:
        token = next(seeded.auth.auth_flow(httpx.Request("GET", "http://x"))).headers[
            "authorization"]
    body = b'{"name": "smug", "password": "secret1"}'
    head = (f"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 4\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    with unchanged(seeded):
        with socket.create_connection((url.hostname, url.port)) as c:
            c.sendall(head + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
            c.settimeout(10)
            got = b""
            while chunk := c.recv(4096):
                got += chunk
        assert got.startswith(b"HTTP/1.1 400 ") and b"Transfer-Encoding" in got, got[:300]
        r = seeded.post(f"{API}/users", content=body, headers={
            "content-type": "application/json", "content-encoding": "gzip"})
        assert_problem(r, 415, "Content-Encoding")


@pytest.mark.parametrize(("body", "words"), [
    (b'{"name": "x\xff"}', "not UTF-8"),
    ('{"name": "x"}'.encode("utf-16"), "not UTF-8"),
    (b"\xef\xbb\xbf" + b'{"name": "x"}', "byte order mark"),
    (b'{"name": "x", "password": ' + b"1" * 5000 + b"}", "4300 digits"),
])
def test_a_body_that_cannot_be_read_says_why(seeded: httpx.Client, body: bytes,
                                            words: str) -> None:
    """These were answered "There was an error parsing the body" (probe of 2026-12-03)."""
    with unchanged(seeded):
        assert_problem(seeded.post(f"{API}/users", content=body, headers=JSON), 400, words)


def test_ids_in_paths_are_bounded_and_a_packages_sha_takes_either_case(
        seeded: httpx.Client) -> None:
    """A 7 KB op id or subscription id was echoed back whole; GET of a package by its
    sha256 in upper case was 404 while the upload's ?sha256= takes either (probe, 12-03)."""
    for method, path in (("GET", "/vnf_lcm_op_occs/"), ("DELETE", "/subscriptions/")):
        r = seeded.request(method, f"{API}{path}{'x' * 7000}")
        assert r.status_code == 422 and len(r.text) < 3000, (r.status_code, len(r.text))
    sha = seeded.get(f"{API}/vnf_packages").json()[0]["sha256"]
    assert seeded.get(f"{API}/vnf_packages/{sha.upper()}").json()["sha256"] == sha
    assert seeded.get(f"{API}/vnf_packages/{sha.upper()}/content").status_code == 200
    assert_problem(seeded.get(f"{API}/vnf_packages/not-a-sha"), 422, "sha256")


def test_a_callback_to_the_orchestrators_own_server_is_refused(seeded: httpx.Client) -> None:
    """Notifications POSTed to the orchestrator's own API (or its NATS server) would reach
    it as requests of its own making (probe of 2026-12-03)."""
    port = httpx.URL(str(seeded.base_url)).port
    for host in ("127.0.0.1", "localhost", "[::1]"):
        with unchanged(seeded):
            r = seeded.post(f"{API}/subscriptions", json={
                "callbackUri": f"http://{host}:{port}/api/v1/users"})
            assert_problem(r, 422, "orchestrator's own server")
    r = seeded.post(f"{API}/subscriptions", json={"callbackUri": "http://127.0.0.1:9/cb"})
    assert r.status_code == 201, r.text
    seeded.delete(f"{API}/subscriptions/{r.json()['id']}")


def test_a_callback_to_the_embedded_nats_server_is_refused(world_: World) -> None:
    """The embedded server's port was let through: the check read the settings, which
    name no NATS URL when the server is the orchestrator's own (probe of 2026-12-05)."""
    port = httpx.URL(world_.live.nats_url).port
    for host in ("127.0.0.1", "localhost"):
        with unchanged(world_.client):
            r = world_.client.post(f"{API}/subscriptions", json={
                "callbackUri": f"http://{host}:{port}/"})
            assert_problem(r, 422, "orchestrator's own server")


def test_an_empty_or_null_body_says_what_to_send(seeded: httpx.Client) -> None:
    with unchanged(seeded):
        assert_problem(seeded.post(f"{API}/users", content=b"", headers=JSON), 422,
                       "the body is empty", "JSON object")
        r = seeded.post(f"{API}/users", content=b"null", headers=JSON)
        body = assert_problem(r, 422, "must be a JSON object, not null")
        assert body["detail"].count("Content-Type") == 1, body


@pytest.mark.parametrize(("path", "words"), [
    ("/vnf_instances?nod=cpe1", ("'nod'", "it takes: node, owner")),
    ("/notifications?nf=x", ("'nf'",)),
    ("/vnf_lcm_op_occs?state=PROCESSING&state=FAILED", ("'state'", "2 times")),
    ("/vnf_instances?node=cpe1&node=cpe2", ("'node'", "2 times")),
    ("/vnf_instances?node=%00", ("node",)),
    ("/steering_rules?node=" + "x" * 100, ("node",)),
    ("/notifications?nf_instance_id=..%2F..", ("nf_instance_id",)),
    ("/notifications?type=%00", ("type",)),
    ("/notifications?type=", ("type",)),
    ("/notifications?type=a%20b", ("type",)),
    ("/nodes?x=1", ("'x'", "none")),
])
def test_query_parameters_a_route_does_not_take_are_refused(
        seeded: httpx.Client, path: str, words: tuple[str, ...]) -> None:
    """`?nod=cpe1` listed every node's rows, `?state=A&state=B` used B, and `?node=%00` said
    [] (probe of 2026-12-05)."""
    assert_problem(seeded.get(f"{API}{path}"), 422, *words)


def test_known_query_parameters_still_work(seeded: httpx.Client) -> None:
    assert [i["id"] for i in seeded.get(f"{API}/vnf_instances?node=cpe1").json()] == [FW_IID]
    assert seeded.get(f"{API}/vnf_instances?node=cpe2&owner=user1").json() == []
    assert seeded.get(f"{API}/vnf_lcm_op_occs?state=COMPLETED").status_code == 200


def test_a_problem_quoting_a_huge_value_is_cut(seeded: httpx.Client) -> None:
    """A 1,000,000-character nf_config key was quoted twice in a 2 MB 422 (probe of
    2026-12-06): a problem's detail is cut at 2000 characters, saying how long it was."""
    with unchanged(seeded):
        r = seeded.patch(f"{API}/users/user1", json={"nf_config": {"x" * 1_000_000: {}}})
        body = assert_problem(r, 422, "characters in all")
        assert len(r.content) < 3000 and len(body["detail"]) < 2100, len(r.content)
