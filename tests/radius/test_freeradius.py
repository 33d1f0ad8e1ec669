"""End to end on loopback: the portal's RADIUS client -> FreeRADIUS (private config, rlm_rest)
-> the orchestrator -> the NFVI database, and back. Both servers are real processes."""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from pathlib import Path

import pytest

from netfate.errors import DriverError
from netfate.radius import service
from netfate.radius.client import RadiusClient, RadiusTimeout
from netfate.radius.server import FreeRadius, stop_recorded
from netfate.supervisor import read_record
from tests.radius.conftest import (
    API_KEY,
    BACKOFF,
    MAX_FAILURES,
    SECRET,
    USERS,
    Stack,
    free_port,
    pid_alive,
    radius_settings,
    running_stack,
    wait_gone,
)

FAILED = "authentication failed: wrong user name or password"


def test_accept_carries_a_stable_framed_ip_from_any_nas(stack: Stack, mac: str) -> None:
    c = stack.client()
    first = c.authenticate("user1", USERS["user1"], mac, "cpe1")
    assert first.accepted, first
    assert first.reply_message == "authenticated"
    assert ipaddress.ip_address(first.framed_ip or "") in ipaddress.ip_network("10.90.100.0/22")
    for nas in ("cpe1", "cpe2", "cpe3", None):  # every login, at every access node
        again = c.authenticate("user1", USERS["user1"], mac, nas)
        assert (again.accepted, again.framed_ip) == (True, first.framed_ip)
    other_mac = c.authenticate("user1", USERS["user1"], "02-ff-ff-ff-ff-01", "cpe2")
    assert other_mac.framed_ip == first.framed_ip
    # It is the address stored with the user.
    assert stack.http.get("/api/v1/users/user1").json()["framed_ip"] == first.framed_ip


def test_a_login_costs_the_orchestrator_one_call(stack: Stack, mac: str) -> None:
    """FreeRADIUS asks the orchestrator once per Access-Request (authenticate, which
    checks the rate limit first): a second call at authorize was a round trip of every
    login and roam for a check authenticate repeats (issue #14)."""
    from netfate.metrics.orchestrator import RADIUS_REQUESTS

    def calls(phase: str) -> float:
        return sum(float(RADIUS_REQUESTS.labels(phase, r)._value.get())
                   for r in ("continue", "accept", "reject", "invalid"))

    before = {p: calls(p) for p in ("authorize", "authenticate")}
    c = stack.client()
    assert c.authenticate("user1", USERS["user1"], mac, "cpe1").accepted
    assert not c.authenticate("user1", "not-the-password", mac, "cpe1").accepted
    assert calls("authorize") == before["authorize"]
    assert calls("authenticate") == before["authenticate"] + 2


def test_different_users_get_different_addresses(stack: Stack, mac: str) -> None:
    c = stack.client()
    ips = {u: c.authenticate(u, pw, mac, "cpe1").framed_ip for u, pw in USERS.items()}
    assert all(ips.values()) and len(set(ips.values())) == len(USERS), ips


def test_wrong_password_and_unknown_user_are_rejected_saying_so(stack: Stack, mac: str) -> None:
    c = stack.client()
    wrong = c.authenticate("user1", "not-the-password", mac, "cpe1")
    assert (wrong.accepted, wrong.framed_ip, wrong.reply_message) == (False, None, FAILED)
    unknown = c.authenticate("nobody", "whatever", mac, "cpe1")
    assert (unknown.accepted, unknown.reply_message) == (False, FAILED)
    # Another user's password is not this user's.
    assert not c.authenticate("user1", USERS["user2"], mac, "cpe1").accepted


def test_rate_limit_per_mac(stack: Stack, mac: str) -> None:
    c = stack.client()
    other = "02-ee-00-00-00-01"
    for i in range(MAX_FAILURES):
        r = c.authenticate("user2", f"guess-{i}", mac, "cpe1")
        assert not r.accepted
    assert "too many attempts" in r.reply_message
    t0 = time.monotonic()
    blocked = c.authenticate("user2", USERS["user2"], mac, "cpe1")  # the right password
    assert not blocked.accepted
    assert blocked.reply_message.startswith("too many attempts, retry in ")
    assert 1 <= int(blocked.reply_message.split()[-2]) <= BACKOFF
    # Also for another user from the same client, and with the MAC written differently.
    assert not c.authenticate("user3", USERS["user3"], mac.replace("-", ":").lower(),
                              "cpe2").accepted
    # Another client is not affected.
    assert c.authenticate("user2", USERS["user2"], other, "cpe1").accepted
    # After the back-off the right password works again.
    time.sleep(max(0.0, BACKOFF - (time.monotonic() - t0)) + 0.2)
    assert c.authenticate("user2", USERS["user2"], mac, "cpe1").accepted


def test_no_password_in_the_database_or_the_logs(stack: Stack, mac: str) -> None:
    c = stack.client()
    c.authenticate("user1", USERS["user1"], mac, "cpe1")
    c.authenticate("user1", "Wr0ng-Guess-42", mac, "cpe1")
    c.authenticate("ghost", "Gh0st-Guess-42", mac, "cpe1")
    state = stack.orchestrator.settings.state_dir
    db_files = [p for p in state.iterdir() if p.name.startswith("nfvi.db")]
    logs = [stack.freeradius.log_file, stack.freeradius.out_file]
    assert db_files and all(p.exists() for p in logs)
    audit = stack.freeradius.log_file.read_text()
    assert "Login OK: [user1]" in audit and "Login incorrect" in audit and "[ghost]" in audit
    for p in db_files + logs:
        data = p.read_bytes()
        for pw in (*USERS.values(), "Wr0ng-Guess-42", "Gh0st-Guess-42"):
            assert pw.encode() not in data, f"a password in {p}"


def test_a_portal_with_the_wrong_secret_gets_no_answer(stack: Stack) -> None:
    bad = RadiusClient(stack.settings.host, stack.settings.port, "not-the-secret-0123",
                       timeout=0.5, retries=0)
    with pytest.raises(RadiusTimeout):
        bad.authenticate("user1", USERS["user1"], "02-00-00-00-00-aa", "cpe1")


def test_a_request_without_message_authenticator_is_dropped(stack: Stack) -> None:
    from pyrad import packet  # type: ignore[import-untyped]

    from netfate.radius.client import dictionary

    req = packet.AuthPacket(secret=SECRET.encode(), dict=dictionary(),
                            message_authenticator=False)
    req["User-Name"] = "user1"
    req["User-Password"] = req.PwCrypt(USERS["user1"])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.7)
        s.sendto(req.RequestPacket(), (stack.settings.host, stack.settings.port))
        with pytest.raises(TimeoutError):
            s.recv(4096)


def test_freeradius_with_the_wrong_api_key_logs_nobody_in(stack: Stack,
                                                         tmp_path: Path) -> None:
    s = radius_settings(api_key="not-the-orchestrators-key-xyz")
    fr = service.start_freeradius(tmp_path, stack.orchestrator.url, s)
    try:
        c = RadiusClient(s.host, s.port, s.secret, timeout=3, retries=0)
        r = c.authenticate("user1", USERS["user1"], "02-00-00-00-00-bb", "cpe1")
        assert not r.accepted
        assert r.reply_message == "authentication service unavailable, try again later"
    finally:
        fr.stop()
    assert "missing or wrong X-NetFATE-Radius-Key" in fr.log_file.read_text()


def test_freeradius_up_without_the_orchestrator_rejects_clearly(tmp_path: Path) -> None:
    s = radius_settings()
    dead_api = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    fr = service.start_freeradius(tmp_path, dead_api, s)  # it starts anyway
    pid = fr.pid
    try:
        r = RadiusClient(s.host, s.port, s.secret, timeout=5, retries=0).authenticate(
            "user1", "pw", "02-00-00-00-00-cc", "cpe1")
        assert (r.accepted, r.reply_message) == (
            False, "authentication service unavailable, try again later")
    finally:
        fr.stop()
    assert pid is not None and wait_gone(pid)
    log = fr.log_file.read_text()
    assert "Couldn't connect to server" in log
    assert "Login incorrect (the orchestrator did not answer" in log


def test_an_orphan_is_ended_by_pid_on_the_next_start(tmp_path: Path) -> None:
    s = radius_settings()
    api = f"http://127.0.0.1:{free_port()}"
    first = service.start_freeradius(tmp_path, api, s)
    old = first.pid
    assert old is not None and pid_alive(old)
    first.proc = None  # forget it, as a killed orchestrator would
    second = service.start_freeradius(tmp_path, api, s)
    try:
        assert wait_gone(old)
        assert second.pid != old and second.running()
        rec = read_record(second.dir / "freeradius.pid")
        assert rec is not None and rec.pid == second.pid
    finally:
        second.stop()
    assert second.pid is None and not (second.dir / "freeradius.pid").exists()
    assert stop_recorded(tmp_path) is None  # nothing left to end


def test_stop_recorded_ends_it_by_pid(tmp_path: Path) -> None:
    s = radius_settings()
    fr = service.start_freeradius(tmp_path, f"http://127.0.0.1:{free_port()}", s)
    pid = fr.pid
    fr.proc = None
    assert stop_recorded(tmp_path) == pid
    assert pid is not None and wait_gone(pid)


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        fr = FreeRadius(tmp_path, port, SECRET, "http://127.0.0.1:1", api_key=API_KEY)
        with pytest.raises(DriverError, match=f"FreeRADIUS on 127.0.0.1:{port} exited"):
            fr.start(timeout=10)
    assert fr.proc is None and not fr.pidfile.exists()


def test_the_stack_leaves_no_process_behind(tmp_path: Path) -> None:
    with running_stack(tmp_path) as st:
        pids = [st.freeradius.pid, st.orchestrator.nats_pid]
        st.http.post("/api/v1/users", json={"name": "u1", "password": "pw-u1-xyz"})
        assert st.client().authenticate("u1", "pw-u1-xyz", "02-00-00-00-00-dd", "n1").accepted
    for pid in pids:
        assert pid is not None and not pid_alive(pid)
    assert not any(p.name == "freeradius.pid" for p in tmp_path.rglob("*"))
    assert os.listdir(tmp_path / "fate-radius")  # its files stay for inspection


def test_running_alongside_the_orchestrator(stack: Stack, tmp_path: Path, mac: str) -> None:
    """service.running(): what the orchestrator's lifespan would use."""
    import asyncio
    orch_settings = stack.orchestrator.settings.model_copy(update={"state_dir": tmp_path})
    s = radius_settings()

    async def login() -> tuple[int | None, bool]:
        async with service.running(orch_settings, s) as fr:
            c = RadiusClient(s.host, s.port, s.secret, timeout=3, retries=0)
            r = await c.authenticate_async("user3", USERS["user3"], mac, "cpe3")
            return fr.pid, r.accepted

    pid, accepted = asyncio.run(login())
    assert accepted
    assert pid is not None and wait_gone(pid)
    assert service.api_url(orch_settings.model_copy(update={"host": "0.0.0.0"})).startswith(
        "http://127.0.0.1:")
    assert service.api_url(orch_settings.model_copy(update={"host": "::1", "port": 1})) == "http://[::1]:1"


def test_a_non_ascii_password_works_through_freeradius(stack: Stack, mac: str) -> None:
    """(new-user probe, 2026-12-05) "päss" was refused: rlm_rest escapes each UTF-8 octet."""
    pw = "Pw-päss-€-😀"
    stack.http.post("/api/v1/users", json={"name": "unicode1", "password": pw}
                    ).raise_for_status()
    c = stack.client()
    assert c.authenticate("unicode1", pw, mac, "cpe1").accepted
    assert not c.authenticate("unicode1", pw.replace("ä", "a"), mac, "cpe1").accepted
