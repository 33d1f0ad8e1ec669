"""The pure parts of AAA: accounting records and usage meters, FreeRADIUS's detail format,
the controller's per-user counters, the RFC 5176 request decoding and answers, Session-Timeout,
and the per-account lockout."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pyrad import packet  # type: ignore[import-untyped]

from netfate.controller import pipeline as pl
from netfate.controller.counters import user_counters
from netfate.controller.flows import build
from netfate.controller.model import Client, SwitchState
from netfate.controller.ofmsg import flow_mod
from netfate.orchestrator.accounting import LoginRow, expired
from netfate.radius import dae
from netfate.radius.accounting import AcctRecord, Usage, UsageMeter, read_detail
from netfate.radius.client import dictionary
from netfate.radius.ratelimit import FailureLimiter, account_key

SECRET = b"dae-secret-0123456789"


# -- usage and records ---------------------------------------------------------------------

def test_usage_meter_sums_switches_and_survives_counter_resets() -> None:
    m = UsageMeter()
    m.update("cpe1", Usage(100, 1, 200, 2))
    m.update("cpe1", Usage(150, 2, 260, 3))
    assert m.total() == Usage(150, 2, 260, 3)
    m.update("cpe1", Usage(10, 1, 20, 1))  # flows re-installed: counting starts again
    assert m.total() == Usage(160, 3, 280, 4)
    m.update("cpe2", Usage(5, 1, 5, 1))    # roamed: the new switch's counters add up
    assert m.total() == Usage(165, 4, 285, 5)


def test_usage_meter_leaves_out_what_was_counted_before_the_login() -> None:
    m = UsageMeter()
    m.start_from("cpe1", Usage(1000, 10, 1000, 10))  # the same flows, an earlier login
    m.update("cpe1", Usage(1100, 11, 1300, 13))
    assert m.total() == Usage(100, 1, 300, 3)
    m.update("cpe1", Usage(50, 1, 50, 1))            # new flows: all of it is this login's
    assert m.total() == Usage(150, 2, 350, 4)


def test_acct_records_carry_rfc_2866_attributes_and_gigawords() -> None:
    start = dict(AcctRecord("Start", "s1", "user1", "cpe1", mac="02:00:00:00:00:01",
                            ip="10.0.0.2", interim_interval=300).attributes())
    assert start["Acct-Status-Type"] == "Start" and start["Acct-Interim-Interval"] == 300
    assert "Acct-Input-Octets" not in start
    big = Usage(in_octets=5 * 2**32 + 7, in_packets=3, out_octets=9, out_packets=1)
    stop = dict(AcctRecord("Stop", "s1", "user1", "cpe2", session_time=61, usage=big,
                           cause="Idle-Timeout").attributes())
    assert (stop["Acct-Input-Octets"], stop["Acct-Input-Gigawords"]) == (7, 5)
    assert stop["Acct-Terminate-Cause"] == "Idle-Timeout" and stop["Acct-Session-Time"] == 61
    assert dict(AcctRecord("Stop", "s", "u", "n").attributes())["Acct-Terminate-Cause"] == \
        "NAS-Request"
    with pytest.raises(ValueError, match="Terminate-Cause"):
        AcctRecord("Stop", "s", "u", "n", cause="Bored").attributes()
    with pytest.raises(ValueError, match="Terminate-Cause"):
        AcctRecord("Interim-Update", "s", "u", "n", cause="Idle-Timeout").attributes()
    with pytest.raises(ValueError, match="session id"):
        AcctRecord("Start", "", "u", "n").attributes()
    # Every attribute encodes with the shipped dictionary.
    req = packet.AcctPacket(secret=SECRET, dict=dictionary())
    for k, v in AcctRecord("Stop", "s1", "u", "n", mac="m", ip="10.0.0.1", usage=big,
                           cause="Admin-Reset").attributes():
        req.AddAttribute(k, v)
    assert req.RequestPacket()


def test_read_detail_parses_freeradius_records(tmp_path: Path) -> None:
    f = tmp_path / "detail"
    assert read_detail(f) == []
    f.write_text('Mon Nov 30 23:41:54 2026\n\tAcct-Status-Type = Start\n'
                 '\tAcct-Session-Id = "abc"\n\tTimestamp = 1796082114\n\n'
                 'Mon Nov 30 23:41:57 2026\n\tAcct-Status-Type = Stop\n'
                 '\tAcct-Session-Id = "abc"\n\tAcct-Terminate-Cause = Idle-Timeout\n\n')
    assert read_detail(f) == [
        {"Acct-Status-Type": "Start", "Acct-Session-Id": "abc", "Timestamp": "1796082114"},
        {"Acct-Status-Type": "Stop", "Acct-Session-Id": "abc",
         "Acct-Terminate-Cause": "Idle-Timeout"}]


def test_session_timeout_expires_from_the_login_not_the_roam() -> None:
    rows = [LoginRow("a", "u1", "cpe2", None, None, login_at=100.0, session_timeout=60),
            LoginRow("b", "u2", "cpe1", None, None, login_at=100.0, session_timeout=None)]
    assert expired(rows, 159.0) == []
    assert [r.acct_id for r in expired(rows, 160.0)] == ["a"]


# -- the controller's counters -------------------------------------------------------------

def _stats(state: SwitchState, counts: dict[int, tuple[int, int]]) -> list[Any]:
    """The switch's flow stats for the flows built from state: counts by flow index."""
    ports = {"lan1": 1, "up": 2, "svc": 3}
    out = []
    for i, f in enumerate(build(state, ports).flows):
        msg = flow_mod(SimpleNamespace(ofproto=None, ofproto_parser=None), f)
        b, p = counts.get(i, (0, 0))
        out.append(SimpleNamespace(cookie=f.cookie, table_id=f.table_id, priority=f.priority,
                                   match=msg.match, instructions=msg.instructions,
                                   idle_timeout=f.idle_timeout, flags=msg.flags,
                                   byte_count=b, packet_count=p))
    return out


def test_user_counters_read_each_users_up_and_down_flows() -> None:
    state = SwitchState(node="cpe1", role="cpe", uplink="up", access_ports=("lan1",),
                        users=(Client(name="user1", mac="02:00:00:00:00:01", ip="10.0.0.2",
                                      port="lan1", authenticated=True, idle_timeout=60),
                               Client(name="~02:00:00:00:00:09", mac="02:00:00:00:00:09",
                                      port="lan1")))
    flows = build(state, {"lan1": 1, "up": 2}).flows
    up = pl.metadata("user1", pl.UP)
    down = pl.metadata("user1", pl.DOWN)
    i_up = next(i for i, f in enumerate(flows) if f.write_metadata == (up, pl.ALL_ONES)
                and f.table_id == pl.INGRESS)
    i_down = next(i for i, f in enumerate(flows) if f.write_metadata == (down, pl.ALL_ONES)
                  and f.table_id == pl.INGRESS)
    stats = _stats(state, {i_up: (1500, 10), i_down: (9000, 7)})
    # Counted anywhere else (the idle flow, the captive client's flows): not the user's.
    assert user_counters(state, stats) == {"user1": (1500, 10, 9000, 7)}


# -- RFC 5176 --------------------------------------------------------------------------------

def _request(code: int = packet.DisconnectRequest, secret: bytes = SECRET,
             ma: bool = True, **attrs: Any) -> bytes:
    req = packet.CoAPacket(code=code, id=7, secret=secret, dict=dictionary(),
                           message_authenticator=ma)
    for k, v in attrs.items():
        for one in v if isinstance(v, list) else [v]:
            req.AddAttribute(k.replace("_", "-"), one)
    return bytes(req.RequestPacket())


def test_dae_decodes_a_signed_disconnect() -> None:
    _, req = dae.decode(_request(User_Name="user1", Acct_Session_Id="s1",
                                 NAS_Identifier="cpe1"), SECRET)
    assert req.disconnect and req.ids == {"User-Name": "user1", "Acct-Session-Id": "s1"}
    assert req.nas_id == "cpe1" and dae.check(req) is None


@pytest.mark.parametrize(("raw", "why"), [
    (_request(secret=b"another-secret-0123", User_Name="u"), "Request Authenticator"),
    (_request(ma=False, User_Name="u"), "no Message-Authenticator"),
    (b"\x28\x01\x00\x14" + bytes(16), "Request Authenticator"),
    (b"\x01\x01\x00\x14" + bytes(16), "not a Disconnect"),
    (b"\x28\x01", "length"),
])
def test_dae_drops_what_is_not_signed_right(raw: bytes, why: str) -> None:
    with pytest.raises(dae.Refused, match=why):
        dae.decode(raw, SECRET)


def test_dae_bad_message_authenticator_is_dropped() -> None:
    raw = bytearray(_request(User_Name="user1"))
    pos = 20
    while raw[pos] != 80:
        pos += raw[pos + 1]
    raw[pos + 2] ^= 0xFF
    # Re-sign the Request Authenticator so only the Message-Authenticator is wrong.
    import hashlib
    raw[4:20] = hashlib.md5(bytes(raw[:4]) + bytes(16) + bytes(raw[20:]) + SECRET,
                            usedforsecurity=False).digest()
    with pytest.raises(dae.Refused, match="bad Message-Authenticator"):
        dae.decode(bytes(raw), SECRET)


@pytest.mark.parametrize(("attrs", "cause"), [
    ({"Framed_MTU": 1400, "User_Name": "u"}, dae.UNSUPPORTED_ATTRIBUTE),
    ({"Filter_Id": "nfs:a"}, dae.MISSING_ATTRIBUTE),
    ({"User_Name": "u", "Filter_Id": "acl-7"}, dae.INVALID_ATTRIBUTE_VALUE),
    ({"User_Name": "u", "Filter_Id": "nfs:a,,b"}, dae.INVALID_ATTRIBUTE_VALUE),
    ({"User_Name": "u", "Idle_Timeout": 70000}, dae.INVALID_ATTRIBUTE_VALUE),
    # past what the database's integer holds: a NAK, not a failed write
    ({"User_Name": "u", "Session_Timeout": 2**32 - 1}, dae.INVALID_ATTRIBUTE_VALUE),
    ({"User_Name": "u"}, dae.MISSING_ATTRIBUTE),  # a CoA changing nothing
])
def test_dae_coa_checks(attrs: dict[str, Any], cause: int) -> None:
    _, req = dae.decode(_request(packet.CoARequest, **attrs), SECRET)
    result = dae.check(req)
    assert result is not None and not result.ok and result.error_cause == cause


def test_dae_coa_filter_ids_name_nfs_in_order() -> None:
    _, req = dae.decode(_request(packet.CoARequest, User_Name="u",
                                 Filter_Id=["nfs:firewall", "nfs:rate-limiter"],
                                 Session_Timeout=600), SECRET)
    assert req.nfs == ("firewall", "rate-limiter") and req.session_timeout == 600
    assert dae.check(req) is None
    assert dae.parse_nfs(["nfs:"]) == ()


def test_dae_answers_are_signed_and_naks_say_why() -> None:
    raw = _request(User_Name="user1")
    pkt, _ = dae.decode(raw, SECRET)
    ack = dae.encode_reply(pkt, dae.DaeResult(True))
    nak = dae.encode_reply(pkt, dae.DaeResult(False, dae.SESSION_CONTEXT_NOT_FOUND))
    sent = packet.CoAPacket(packet=raw, secret=SECRET, dict=dictionary())
    for answer, code in ((ack, packet.DisconnectACK), (nak, packet.DisconnectNAK)):
        reply = sent.CreateReply(packet=answer)
        assert reply.code == code
        assert sent.VerifyReply(reply, answer)
        assert reply.message_authenticator
    assert packet.CoAPacket(packet=nak, secret=SECRET, dict=dictionary()
                            )["Error-Cause"] == ["Session-Context-Not-Found"]


# -- per-account lockout ---------------------------------------------------------------------

def test_account_key_ignores_case_and_is_apart_from_macs() -> None:
    assert account_key("User1") == account_key("user1") == "user:user1"
    lim = FailureLimiter(max_failures=2, window=60, backoff=30, clock=lambda: 0.0)
    lim.failure(account_key("user1"))
    assert lim.failure(account_key("USER1")) == 30
    assert lim.retry_after(account_key("user1")) == 30


# -- the orchestrator's accounting loop, on a real (SQLite) database --------------------------

def test_accounting_is_level_triggered_start_interim_roam_stop_and_timeout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import time

    from netfate.db import Database, repo
    from netfate.db.session import sqlite_url
    from netfate.orchestrator import accounting as acct
    from netfate.orchestrator.sessions import Login, record_association

    sent: list[AcctRecord] = []
    monkeypatch.setattr(acct, "send", lambda _client, rec: sent.append(rec) or 0.0)
    clock = [time.time()]  # the session rows are stamped with the real clock
    ended: list[tuple[str, str, str]] = []
    db = Database.create(sqlite_url(tmp_path / "state"))

    async def end_session(user: str, cause: str, acct_id: str) -> None:
        ended.append((user, cause, acct_id))

    def do(fn: Any, *args: Any) -> Any:
        with db.session() as s:
            return fn(s, *args)

    try:
        do(lambda s: (repo.upsert_node(s, "cpe1", role="cpe"),
                      repo.upsert_node(s, "cpe2", role="cpe"),
                      repo.create_user(s, "u1", "pw-u1-0123"),
                      repo.create_user(s, "u2", "pw-u2-0123")))
        a = acct.Accounting(db, object(), 10.0, end_session,  # type: ignore[arg-type]
                            clock=lambda: clock[0])

        def tick() -> list[tuple[str, str]]:
            sent.clear()
            asyncio.run(a.tick())
            return [(r.status, r.user) for r in sent]

        assert tick() == []
        # A login shorter than a tick is accounted all the same.
        do(record_association, "u2", "cpe1", None, None, Login())
        do(lambda s: repo.end_session(s, repo.active_session(s, "u2").id, cause="Admin-Reset"))
        assert tick() == [("Start", "u2"), ("Stop", "u2")]
        assert sent[1].cause == "Admin-Reset"
        do(record_association, "u1", "cpe1", "02:00:00:00:00:01", "10.0.0.1",
           Login(session_timeout=100))
        assert tick() == [("Start", "u1")]
        sid = sent[0].session_id
        a.counters("cpe1", {"u1": Usage(10, 1, 20, 2)})
        clock[0] += 10
        assert tick() == [("Interim-Update", "u1")] and sent[0].usage == Usage(10, 1, 20, 2)
        # A roam: the same login, now at cpe2, its counters added.
        do(record_association, "u1", "cpe2", "02:00:00:00:00:01", "10.0.0.1", None)
        a.counters("cpe2", {"u1": Usage(5, 1, 5, 1)})
        clock[0] += 10
        assert tick() == [("Interim-Update", "u1")]
        assert (sent[0].session_id, sent[0].nas_id, sent[0].usage) == (
            sid, "cpe2", Usage(15, 2, 25, 3))
        # Session-Timeout counts from the login (not the roam): its session is ended.
        clock[0] += 81
        tick()
        assert ended == [("u1", "Session-Timeout", sid)]
        do(lambda s: repo.end_session(s, repo.active_session(s, "u1").id,
                                      cause="Session-Timeout"))
        assert tick() == [("Stop", "u1")]
        assert sent[0].cause == "Session-Timeout" and 100 <= sent[0].session_time <= 105
        assert tick() == []
    finally:
        db.dispose()
