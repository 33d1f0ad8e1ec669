"""AAA an operator expects, on loopback with the real FreeRADIUS and radclient: accounting
recorded by FreeRADIUS (Start, Interim-Update, Stop; one session id across a roam; the
users' counters), Dynamic Authorization (RFC 5176 Disconnect and CoA, with radclient),
Session-Timeout and Idle-Timeout, and the per-account password lockout.

The nodes are fake agents on the orchestrator's bus (tests/api/harness.py): they converge
NFs in memory and confirm switch states, so NFs are placed and released for real as far as
the orchestrator is concerned. The per-user counters a controller publishes are published
here on the same subject; the real controller's reading of them is tested in
tests/unit/test_radius_aaa.py and on the testbed."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from netfate.bus import subjects
from netfate.bus.messages import UserCounters
from netfate.radius.accounting import read_detail
from tests.api.harness import FakeAgent, LoopThread
from tests.radius.conftest import SECRET, USERS, Stack, running_stack

INTERIM = 2.0
MACS = {"user1": "02:00:00:00:00:01", "user2": "02:00:00:00:00:02"}


@dataclass
class Aaa:
    stack: Stack
    loop: LoopThread
    agents: dict[str, FakeAgent]

    def records(self, **match: str) -> list[dict[str, str]]:
        return [r for r in read_detail(self.stack.freeradius.detail_file)
                if all(r.get(k) == v for k, v in match.items())]

    def login(self, user: str, node: str = "cpe1", **kw: Any) -> str:
        """The portal's call after Access-Accept; the new login's Acct-Session-Id."""
        body = {"node": node, "mac": MACS[user], "ip": f"10.90.100.{len(user) + 10}",
                "login": True, **kw}
        self.stack.http.post(f"/api/v1/users/{user}/associate", json=body).raise_for_status()
        return self.acct_id(user)

    def acct_id(self, user: str) -> str:
        orch = self.stack.orchestrator.orch

        def read(s: Any) -> str:
            from netfate.db import repo

            cur = repo.active_session(s, user)
            assert cur is not None, f"{user} has no active session"
            return str(cur.acct_session_id)

        return str(orch.db.call(read))

    def counters(self, node: str, **users: tuple[int, int, int, int]) -> None:
        msg = UserCounters(node=node, ts=time.time(), users=dict(users))
        self.loop.run(self.agents[node]._publish(subjects.controller_counters(node),
                                                 msg.model_dump_json()))

    def radclient(self, kind: str, attrs: str, secret: str = SECRET,
                  port: int | None = None) -> str:
        port = port or self.stack.settings.dae_port
        cp = subprocess.run(
            ["radclient", "-x", "-r", "1", "-t", "2", f"127.0.0.1:{port}", kind, secret],
            input=attrs.encode(), capture_output=True, timeout=20, check=False)
        return (cp.stdout + cp.stderr).decode(errors="replace")

    def user(self, name: str) -> dict[str, Any]:
        r = self.stack.http.get(f"/api/v1/users/{name}")
        r.raise_for_status()
        out: dict[str, Any] = r.json()
        return out


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def aaa() -> Iterator[Aaa]:
    loop = LoopThread()
    agents: dict[str, FakeAgent] = {}
    # Not under pytest's 0700 tmp: FreeRADIUS, once it dropped to its user, must reach its
    # own radacct/ to record accounting (a deployment's state directory is traversable).
    state = Path(tempfile.mkdtemp(prefix="fate-test-aaa-"))
    state.chmod(0o711)
    try:
        with running_stack(state, aaa=True, idle_timeout=45,
                           acct_interim_interval=INTERIM, account_max_failures=3,
                           account_backoff=60.0) as st:
            for name, pw in USERS.items():
                st.http.post("/api/v1/users", json={"name": name, "password": pw}
                             ).raise_for_status()
            for node in ("cpe1", "cpe2"):
                agents[node] = FakeAgent(loop, st.orchestrator.orch.nats.url, node)
                agents[node].start()
            yield Aaa(st, loop, agents)
            for a in agents.values():
                a.kill()
    finally:
        loop.close()
        shutil.rmtree(state, ignore_errors=True)


def test_accounting_start_interim_stop_one_session_id_across_a_roam(aaa: Aaa) -> None:
    sid = aaa.login("user1")
    start = wait_for("the Start", lambda: aaa.records(**{"Acct-Session-Id": sid,
                                                        "Acct-Status-Type": "Start"}))
    assert start[0]["User-Name"] == "user1" and start[0]["NAS-Identifier"] == "cpe1"
    assert start[0]["Calling-Station-Id"] == MACS["user1"]

    # The switch's counters of user1's flows reach the next Interim-Update.
    aaa.counters("cpe1", user1=(1000, 10, 3000, 30))
    wait_for("an Interim-Update with cpe1's counters", lambda: aaa.records(**{
        "Acct-Session-Id": sid, "Acct-Status-Type": "Interim-Update",
        "Acct-Input-Octets": "1000", "Acct-Output-Packets": "30"}))

    # A roam (fast re-authentication's association) keeps the session id; the new node's
    # counters add to the old one's.
    aaa.stack.http.post("/api/v1/users/user1/associate",
                        json={"node": "cpe2", "mac": MACS["user1"]}).raise_for_status()
    assert aaa.acct_id("user1") == sid
    aaa.counters("cpe2", user1=(500, 5, 700, 7))
    wait_for("an Interim-Update from cpe2 with the summed counters", lambda: aaa.records(**{
        "Acct-Session-Id": sid, "Acct-Status-Type": "Interim-Update",
        "NAS-Identifier": "cpe2", "Acct-Input-Octets": "1500",
        "Acct-Output-Octets": "3700"}))

    aaa.stack.http.post("/api/v1/users/user1/logout").raise_for_status()
    stop = wait_for("the Stop", lambda: aaa.records(**{"Acct-Session-Id": sid,
                                                      "Acct-Status-Type": "Stop"}))
    assert stop[0]["Acct-Terminate-Cause"] == "User-Request"
    assert stop[0]["Acct-Input-Octets"] == "1500" and stop[0]["Acct-Input-Packets"] == "15"
    assert int(stop[0]["Acct-Session-Time"]) >= 0
    # One Start and one Stop for the login, whatever happened in between.
    assert len(aaa.records(**{"Acct-Session-Id": sid, "Acct-Status-Type": "Start"})) == 1
    assert len(aaa.records(**{"Acct-Session-Id": sid, "Acct-Status-Type": "Stop"})) == 1


def test_a_new_login_is_a_new_accounting_session(aaa: Aaa) -> None:
    first = aaa.login("user2")
    second = aaa.login("user2")
    assert first != second
    stop = wait_for("the first login's Stop", lambda: aaa.records(**{
        "Acct-Session-Id": first, "Acct-Status-Type": "Stop"}))
    assert stop[0]["Acct-Terminate-Cause"] == "User-Request"
    wait_for("the second's Start", lambda: aaa.records(**{"Acct-Session-Id": second,
                                                          "Acct-Status-Type": "Start"}))
    aaa.stack.http.post("/api/v1/users/user2/logout").raise_for_status()


def test_radclient_disconnect_is_acked_and_ends_the_session(aaa: Aaa) -> None:
    sid = aaa.login("user1")
    aaa.stack.http.patch("/api/v1/users/user1", json={"required_nfs": ["firewall"]}
                         ).raise_for_status()
    aaa.stack.http.post("/api/v1/users/user1/associate",
                        json={"node": "cpe1", "mac": MACS["user1"]}).raise_for_status()
    wait_for("user1's firewall on cpe1", lambda: any(
        "firewall" in i for i in aaa.agents["cpe1"].running_ids()))
    out = aaa.radclient("disconnect", f'User-Name = "user1"\nAcct-Session-Id = "{sid}"\n'
                                      "Message-Authenticator = 0x00\n")
    assert "Received Disconnect-ACK" in out, out
    # The session is over: NFs released, the device captive again (not steered), and the
    # accounting Stop says why.
    wait_for("user1's NFs released", lambda: not any(
        "user1" in i for i in aaa.agents["cpe1"].running_ids()))
    assert aaa.user("user1")["access_node"] is None
    wait_for("user1 unsteered", lambda: not any(
        u == "user1" for u, _, _ in aaa.agents["cpe1"].steering))
    stop = wait_for("the Stop", lambda: aaa.records(**{"Acct-Session-Id": sid,
                                                      "Acct-Status-Type": "Stop"}))
    assert stop[0]["Acct-Terminate-Cause"] == "Admin-Reset"
    # No such session any more: NAK with Error-Cause Session-Context-Not-Found (503).
    again = aaa.radclient("disconnect", 'User-Name = "user1"\nMessage-Authenticator = 0x00\n')
    assert "Received Disconnect-NAK" in again and "Session-Context-Not-Found" in again, again
    aaa.stack.http.patch("/api/v1/users/user1", json={"required_nfs": []}).raise_for_status()


def test_disconnects_that_are_not_signed_right_get_no_answer(aaa: Aaa) -> None:
    aaa.login("user2")
    dae = aaa.stack.orchestrator.orch.aaa.dae
    before = dict(dae.stats.dropped)
    wrong = aaa.radclient("disconnect", 'User-Name = "user2"\nMessage-Authenticator = 0x00\n',
                          secret="not-the-shared-secret")
    bare = aaa.radclient("disconnect", 'User-Name = "user2"\n')  # no Message-Authenticator
    for out in (wrong, bare):
        assert "Received" not in out and "No reply" in out, out
    assert dae.stats.dropped.get("bad Request Authenticator", 0) > before.get(
        "bad Request Authenticator", 0)
    assert dae.stats.dropped.get("no Message-Authenticator", 0) > before.get(
        "no Message-Authenticator", 0)
    assert aaa.user("user2")["access_node"] == "cpe1"  # still logged in
    aaa.stack.http.post("/api/v1/users/user2/logout").raise_for_status()


def test_coa_changes_the_logins_nfs_and_idle_timeout_not_the_profile(aaa: Aaa) -> None:
    aaa.login("user2")
    out = aaa.radclient("coa", 'User-Name = "user2"\nFilter-Id = "nfs:rate-limiter"\n'
                               "Idle-Timeout = 30\nMessage-Authenticator = 0x00\n")
    assert "Received CoA-ACK" in out, out
    # The login's NFs change; the user's stored profile does not (RFC 5176 3.1).
    assert aaa.user("user2")["session_nfs"] == ["rate-limiter"]
    assert aaa.user("user2")["required_nfs"] == []
    wait_for("user2's rate-limiter on cpe1", lambda: any(
        "rate-limiter" in i and "user2" in i for i in aaa.agents["cpe1"].running_ids()))

    def idle_of_user2() -> int | None:
        states = aaa.agents["cpe1"].switch_states
        users = [u for u in states[-1].users if u.name == "user2"] if states else []
        return users[0].idle_timeout if users else None

    wait_for("user2's idle timeout of 30 s at the switch", lambda: idle_of_user2() == 30)
    bad = aaa.radclient("coa", 'User-Name = "user2"\nFilter-Id = "nfs:no-such-nf"\n'
                               "Message-Authenticator = 0x00\n")
    assert "Received CoA-NAK" in bad and "Invalid-Attribute-Value" in bad, bad
    odd = aaa.radclient("coa", 'User-Name = "user2"\nFramed-MTU = 1400\n'
                               "Message-Authenticator = 0x00\n")
    assert "Received CoA-NAK" in odd and "Unsupported-Attribute" in odd, odd
    assert aaa.user("user2")["session_nfs"] == ["rate-limiter"]
    aaa.stack.http.post("/api/v1/users/user2/logout").raise_for_status()
    assert aaa.user("user2")["session_nfs"] is None
    wait_for("user2's rate-limiter released at logout", lambda: not any(
        "rate-limiter" in i and "user2" in i for i in aaa.agents["cpe1"].running_ids()))
    aaa.login("user2")  # a new login: the stored profile (no NFs) applies again
    assert aaa.user("user2")["session_nfs"] is None
    aaa.stack.http.post("/api/v1/users/user2/logout").raise_for_status()


def test_the_access_accept_carries_idle_timeout_and_it_reaches_the_switch(aaa: Aaa) -> None:
    result = aaa.stack.client().authenticate("user3", USERS["user3"], "02-00-00-aa-00-01",
                                             "cpe1")
    assert result.accepted and result.idle_timeout == 45
    aaa.login("user1", idle_timeout=17)

    def idle_of_user1() -> int | None:
        states = aaa.agents["cpe1"].switch_states
        users = [u for u in states[-1].users if u.name == "user1"] if states else []
        return users[0].idle_timeout if users else None

    wait_for("user1's idle timeout of 17 s at the switch", lambda: idle_of_user1() == 17)
    aaa.stack.http.post("/api/v1/users/user1/logout").raise_for_status()


def test_session_timeout_ends_the_session(aaa: Aaa) -> None:
    sid = aaa.login("user2", session_timeout=2)
    stop = wait_for("the Stop at the Session-Timeout", lambda: aaa.records(**{
        "Acct-Session-Id": sid, "Acct-Status-Type": "Stop"}), timeout=20)
    assert stop[0]["Acct-Terminate-Cause"] == "Session-Timeout"
    assert int(stop[0]["Acct-Session-Time"]) >= 2
    assert aaa.user("user2")["access_node"] is None


def test_password_guessing_locks_the_account_whatever_mac_tries(aaa: Aaa) -> None:
    c = aaa.stack.client()
    # Three wrong passwords, each from a MAC of its own (a device changing its MAC): no MAC
    # reaches its own limit (5), the account does (3).
    for i in range(3):
        r = c.authenticate("user3", "wrong-guess", f"02-00-00-bb-00-{i:02X}", "cpe1")
        assert not r.accepted
    right = c.authenticate("user3", USERS["user3"], "02-00-00-bb-00-10", "cpe2")
    assert not right.accepted and "too many attempts" in right.reply_message, right
    # Other accounts are not touched.
    assert c.authenticate("user2", USERS["user2"], "02-00-00-bb-00-11", "cpe1").accepted
