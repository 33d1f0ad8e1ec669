"""Hostile documents through the northbound API (issue #16, inputs 1, 2, 3 and 7): each is
refused with a 4xx problem naming what is wrong, quickly, changing nothing, while the API
keeps answering; no stored schema can make an instantiate answer 5xx."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from netfate.descriptor import parse_descriptor
from netfate.errors import InvalidInput
from netfate.orchestrator.api import routes_packages
from tests.api.harness import (
    AUTH,
    LiveOrchestrator,
    assert_problem,
    one_node,
    unchanged,
)
from tests.unit.hostile_docs import (
    MISSING_DEFS,
    REMOTE_REF,
    bundle,
    laughs,
    negative_size_tgz,
    with_schema,
)

API = "/api/v1"
GZ = {"Content-Type": "application/gzip"}


@dataclass
class World:
    live: LiveOrchestrator
    client: httpx.Client


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One orchestrator for the module: node cpe1 (a fake agent) and user1."""
    with one_node(tmp_path_factory.mktemp("documents")) as (live, c):
        yield World(live, c)


@pytest.fixture
def client(world: World) -> httpx.Client:
    return world.client


def _health(c: httpx.Client) -> None:
    r = c.get(f"{API}/health", timeout=5)
    assert r.status_code == 200 and r.json()["ok"] is True, r.text


# -- input 1: an archive that never finishes inspecting ---------------------------------------

def test_issue_negative_size_member_is_refused(client: httpx.Client) -> None:
    """The issue's 104-byte .tgz: once it stalled the whole orchestrator."""
    with unchanged(client):
        r = client.post(f"{API}/vnf_packages", content=negative_size_tgz(), headers=GZ)
        assert_problem(r, 422, "size is negative")
    _health(client)


def test_upload_inspection_is_off_the_event_loop_and_bounded(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """While uploads are being inspected the API answers; one that takes longer than
    inspect_timeout is refused with a 4xx, and one no inspector could take in that time
    with a 503."""
    started = threading.Event()

    def slow(data: bytes) -> Any:
        started.set()
        time.sleep(4)
        raise InvalidInput("not reached")

    monkeypatch.setattr(routes_packages, "inspect_bundle", slow)
    monkeypatch.setattr(world.live.orch.settings, "inspect_timeout", 1.0)
    n = routes_packages.INSPECTORS + 1
    with httpx.Client(base_url=world.live.url, timeout=15, headers=AUTH) as other, \
            ThreadPoolExecutor(n) as pool:
        uploads = [pool.submit(other.post, f"{API}/vnf_packages", content=b"x", headers=GZ)
                   for _ in range(n)]
        assert started.wait(10)
        _health(world.client)  # during
        answers = sorted((u.result(timeout=15) for u in uploads), key=lambda r: r.status_code)
    # Each inspector took one and gave up on it; the one left waiting was told to retry.
    for r in answers[:-1]:
        assert_problem(r, 422, "took over 1 s to inspect")
    assert_problem(answers[-1], 503, "busy", "retry")
    _health(world.client)  # after


# -- input 2: a descriptor that takes minutes to parse ----------------------------------------

def test_issue_billion_laughs_descriptor_is_refused(client: httpx.Client) -> None:
    with unchanged(client):
        r = client.post(f"{API}/vnf_packages", content=bundle(laughs(9)), headers=GZ)
        assert_problem(r, 422, "descriptor.yaml", "aliases")
    _health(client)


def test_json_bodies_are_bounded_below_uploads(world: World) -> None:
    c, s = world.client, world.live.settings
    assert s.max_json_bytes < s.max_body_bytes
    body = b'{"name": "user2", "password": "' + b"x" * s.max_json_bytes + b'"}'
    with unchanged(c):
        assert_problem(c.post(f"{API}/users", content=body,
                              headers={"Content-Type": "application/json"}),
                       413, str(s.max_json_bytes))
        # A bundle may be bigger: this one is read, and refused for what it is.
        assert_problem(c.post(f"{API}/vnf_packages", content=body, headers=GZ), 422, "tgz")


@pytest.mark.parametrize("depth", [40, 500, 100_000])
def test_deeply_nested_json_is_refused(client: httpx.Client, depth: int) -> None:
    """Deep enough to pass json's own bound but not pydantic's serialiser once stored (500
    then on every read of it), or deeper than json's: a 4xx either way."""
    deep = "[" * depth + "]" * depth
    bodies = [("/users", f'{{"name": "user3", "password": "secret3", '
                         f'"nf_config": {{"firewall": {{"x": {deep}}}}}}}'),
              ("/vnf_instances", f'{{"nf": "firewall", "owner": "user1", "node": "cpe1", '
                                 f'"config": {{"x": {deep}}}}}')]
    with unchanged(client):
        for path, body in bodies:
            r = client.post(API + path, content=body,
                            headers={"Content-Type": "application/json"})
            assert_problem(r, (400, 422), "nested")
    _health(client)


# -- input 3: a schema that breaks every later instantiate ------------------------------------

@pytest.mark.parametrize(("schema", "words"), [
    (MISSING_DEFS, ("#/$defs/rule", "points at nothing")),
    (REMOTE_REF, ("http://example.com/r.json", "not a local reference")),
])
def test_issue_schema_with_unresolvable_refs_is_refused_at_upload(
        client: httpx.Client, schema: dict[str, Any], words: tuple[str, ...]) -> None:
    with unchanged(client):
        r = client.post(f"{API}/vnf_packages", content=bundle(with_schema(schema)), headers=GZ)
        assert_problem(r, 422, "config-schema", *words)


def test_a_stored_broken_schema_answers_409_not_500(world: World) -> None:
    """Defence in depth: a package stored before uploads were checked whole (put straight
    into the database here) makes instantiate answer 409 naming the schema."""
    from netfate.db import repo

    good = parse_descriptor(with_schema({}, name="broken")).model_dump(mode="json",
                                                                       by_alias=True)
    for i, schema in enumerate((MISSING_DEFS, REMOTE_REF)):
        desc = {**good, "version": str(i), "config-schema": schema}
        db = world.live.orch.db
        assert db is not None
        with db.session() as s:
            repo.add_bundle(s, bundle(desc) + bytes(i + 1), name="broken", version=str(i),
                            descriptor=desc)
        r = world.client.post(f"{API}/vnf_instances", json={
            "nf": "broken", "owner": "user1", "node": "cpe1", "config": {"rules": {}}})
        ref = schema["properties"]["rules"]["$ref"]
        assert_problem(r, 409, "cannot be used", "config-schema", ref)


# -- input 7: passwords the API accepts but no one can use ------------------------------------

@pytest.mark.parametrize(("password", "words"), [
    ("reauth:my-own-pass", ("password", "reauth:")),
    ("x" * 200, ("password", "128 bytes")),
    ("secret\x00", ("password", "control")),
    ("secret ", ("password", "white space")),
])
def test_issue_unusable_passwords_are_refused(client: httpx.Client, password: str,
                                              words: tuple[str, ...]) -> None:
    with unchanged(client):
        assert_problem(client.post(f"{API}/users", json={"name": "user2",
                                                         "password": password}), 422, *words)
        assert_problem(client.patch(f"{API}/users/user1", json={"password": password}),
                       422, *words)
    r = client.post(f"{API}/users", json={"name": "user9", "password": "x" * 128})
    assert r.status_code == 201, r.text
    assert client.delete(f"{API}/users/user9").status_code == 204
