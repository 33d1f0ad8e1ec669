"""Per-user traffic classes: stored and checked with the user, turned into the controller's
classifiers, and followed through the fake switch (the issue's example: only the user's HTTP
crosses an inspector, everything else the firewall)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from netfate.controller.fake import FakeSwitch, ip_packet
from netfate.controller.flows import build
from netfate.controller.model import Client, Hop, SwitchState
from netfate.db import Database, repo, sqlite_url
from netfate.errors import InvalidInput
from netfate.orchestrator.switches import split_chain

M1, GW_MAC, IP1, INET = "02:aa:00:00:00:01", "02:bb:00:00:00:01", "10.90.1.1", "10.255.0.1"
FW, PI = Hop(lan="fw-l", wan="fw-w"), Hop(lan="pi-l", wan="pi-w")
PORTS = {"a1": 1, "up": 10, "fw-l": 31, "fw-w": 32, "pi-l": 41, "pi-w": 42}
WEB = {"name": "web", "priority": 100, "ip_proto": 6, "remote_port": 80,
       "nfs": ["packet-inspector"]}


@pytest.fixture
def db(tmp_path: Any) -> Iterator[Database]:
    d = Database.create(sqlite_url(tmp_path))
    try:
        yield d
    finally:
        d.dispose()


def test_classes_are_stored_with_the_user_and_changed_with_it(db: Database) -> None:
    with db.session() as s:
        u = repo.create_user(s, "user1", "secret1", required_nfs=["firewall",
                                                                   "packet-inspector"],
                             classifiers=[WEB])
        assert u.classifiers == [WEB]
    with db.session() as s:
        u = repo.update_user(s, "user1", classifiers=[])
        assert u.classifiers == []


@pytest.mark.parametrize(("cls", "why"), [
    ({**WEB, "nfs": ["rate-limiter"]}, "must name NFs of required_nfs"),
    ({**WEB, "ip_proto": 1}, "needs ip_proto 6"),
    ({"name": "x", "priority": 5, "nfs": ["firewall"]}, "matches nothing"),
    ({**WEB, "priority": 0}, "priority"),
    ({**WEB, "remote": "10.300.0.0/16"}, "remote"),
    ({**WEB, "colour": "red"}, "keys"),
])
def test_bad_classes_are_refused_and_change_nothing(db: Database, cls: dict[str, Any],
                                                     why: str) -> None:
    with db.session() as s:
        repo.create_user(s, "user1", "secret1", required_nfs=["firewall", "packet-inspector"])
    with pytest.raises(InvalidInput, match=why), db.session() as s:
        repo.update_user(s, "user1", classifiers=[cls])
    with db.session() as s:
        assert repo.get_user(s, "user1").classifiers == []


def test_two_classes_with_one_priority_are_refused(db: Database) -> None:
    with pytest.raises(InvalidInput, match="unique"), db.session() as s:
        repo.create_user(s, "user1", "secret1", required_nfs=["firewall", "packet-inspector"],
                         classifiers=[WEB, {**WEB, "name": "web2"}])


def test_dropping_an_nf_a_class_uses_is_refused(db: Database) -> None:
    with db.session() as s:
        repo.create_user(s, "user1", "secret1", required_nfs=["firewall", "packet-inspector"],
                         classifiers=[WEB])
    with pytest.raises(InvalidInput, match="required_nfs"), db.session() as s:
        repo.update_user(s, "user1", required_nfs=["firewall"])


def test_only_http_crosses_the_inspector_everything_else_the_firewall() -> None:
    default, classes = split_chain([(FW, "firewall"), (PI, "packet-inspector")], [WEB])
    assert default == (FW,) and [c.chain for c in classes] == [(PI,)]
    user = Client(name="user1", mac=M1, ip=IP1, port="a1", authenticated=True, chain=default,
                classifiers=classes)
    st = SwitchState(node="cpe1", role="cpe", uplink="up", access_ports=("a1",), users=(user,))
    fs = build(st, PORTS)
    assert not fs.skipped
    sw = FakeSwitch(PORTS)
    sw.apply(fs.flows)
    nfs = {"fw-l": "fw-w", "fw-w": "fw-l", "pi-l": "pi-w", "pi-w": "pi-l"}
    http = sw.trace(ip_packet("a1", M1, GW_MAC, IP1, INET, dport=80), nfs).path
    other = sw.trace(ip_packet("a1", M1, GW_MAC, IP1, INET, dport=5201), nfs).path
    assert http == ["pi-l", "up"] and other == ["fw-l", "up"]
    # and the replies come back the same way
    back = sw.trace(ip_packet("up", GW_MAC, M1, INET, IP1, sport=80, dport=40000), nfs).path
    assert back == ["pi-w", "a1"]
