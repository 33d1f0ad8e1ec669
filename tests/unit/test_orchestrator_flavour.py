"""The flavour an instance is recorded with: the engine's choice where the node runs it, else
the resolver's (netfate.resolver), from the bundle's flavours and the node's report."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from netfate.db import Database, repo, sqlite_url
from netfate.errors import MissingCapability, NotFound
from netfate.orchestrator.flavour import flavour_for
from netfate.orchestrator.snapshot import build

from .test_db import BUNDLE, DESCRIPTOR


@pytest.fixture
def s(tmp_path) -> Iterator[Session]:  # type: ignore[no-untyped-def]
    d = Database.create(sqlite_url(tmp_path / "state"))
    try:
        with d.session() as session:
            yield session
    finally:
        d.dispose()


def _bundle(s: Session, flavours: list[str]) -> str:
    desc = {**DESCRIPTOR, "flavours": flavours, "vnf-type": flavours[0]}
    return repo.add_bundle(s, BUNDLE + flavours[0].encode(), name="firewall", version="1.0",
                           descriptor=desc, now=100.0).sha256


def test_native_when_the_node_reports_nothing(s: Session) -> None:
    repo.upsert_node(s, "cpe1", role="cpe", now=100.0)
    assert flavour_for(s, "cpe1", _bundle(s, ["native"])) == "native"


def test_the_resolver_picks_among_the_flavours_the_node_hosts(s: Session) -> None:
    repo.upsert_node(s, "cpe1", role="cpe", now=100.0,
                     infrastructure={"flavours": ["native", "container"]})
    repo.upsert_node(s, "dc1", role="dc", now=100.0,
                     infrastructure={"flavours": ["native", "container", "vm"]})
    sha = _bundle(s, ["container", "native"])
    assert flavour_for(s, "cpe1", sha) == "native"  # native at the edge
    assert flavour_for(s, "dc1", sha) == "container"  # container in the DC
    assert flavour_for(s, "cpe1", sha, preferred="container") == "container"  # the engine's
    assert flavour_for(s, "cpe1", sha, preferred="vm") == "native"  # not run there: resolved
    snap = build(s, now=200.0)
    assert snap.node("cpe1").flavours == {"native", "container"}  # type: ignore[union-attr]
    assert snap.entry("firewall").flavours == ("container", "native")  # type: ignore[union-attr]


def test_no_common_flavour_is_refused_naming_both(s: Session) -> None:
    repo.upsert_node(s, "cpe1", role="cpe", now=100.0, infrastructure={"flavours": ["native"]})
    with pytest.raises(MissingCapability, match="runs none of firewall's flavours vm"):
        flavour_for(s, "cpe1", _bundle(s, ["vm"]))
    with pytest.raises(NotFound):
        flavour_for(s, "cpe1", "f" * 64)
