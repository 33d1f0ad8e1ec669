"""Fast re-authentication: a node presents the token of the user's active session instead of
the password, from the same MAC, while the session is fresh."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from netfate.db import Database, repo, sqlite_url
from netfate.radius.backend import REAUTH_PREFIX, AuthRequest, RadiusBackend, reauth_token
from netfate.radius.settings import RadiusSettings

API_KEY = "api-key-abcdefghijklmnopqrstuvwxyz"
MAC, OTHER_MAC = "02:aa:00:00:00:01", "02:aa:00:00:00:02"
FRAMED_IP = "10.90.100.7"
MAX_FAILURES = 3


def settings(reauth_lifetime: float = 3600.0) -> RadiusSettings:
    return RadiusSettings(secret="portal-secret-0123456789", api_key=API_KEY,
                          pool="10.90.100.0/22", max_failures=MAX_FAILURES,
                          failure_window=60.0, backoff=60.0, max_tracked=100,
                          session_timeout=None, reauth_lifetime=reauth_lifetime)


@pytest.fixture
def db(tmp_path) -> Iterator[Database]:
    d = Database.create(sqlite_url(tmp_path))
    with d.session() as s:
        repo.upsert_node(s, "cpe1", role="cpe")
        repo.upsert_node(s, "cpe2", role="cpe")
        repo.create_user(s, "user1", "Pw-user1-long-enough", framed_ip=FRAMED_IP)
        repo.create_user(s, "user2", "Pw-user2-long-enough")
    yield d
    d.dispose()


def start(db: Database, user: str = "user1", age: float = 10.0) -> str:
    """An active session of the user at cpe1, started `age` seconds ago; its token."""
    with db.session() as s:
        sess = repo.add_session(s, user=user, node="cpe1", mac=MAC, now=time.time() - age)
        return reauth_token(API_KEY, sess.id, MAC)


def login(token: str, mac: str = MAC, user: str = "user1") -> AuthRequest:
    return AuthRequest(user=user, password=token, mac=mac, nas="cpe2")


def test_the_sessions_token_from_the_same_mac_is_accepted(db: Database) -> None:
    d = RadiusBackend(db, settings()).authenticate(login(start(db)))
    assert d.accept and d.status == 200
    assert d.framed_ip == FRAMED_IP
    assert d.body()["reply:Framed-IP-Address"] == FRAMED_IP


def test_the_mac_is_compared_without_case(db: Database) -> None:
    assert RadiusBackend(db, settings()).authenticate(login(start(db), mac=MAC.upper())).accept


def test_no_active_session_is_refused(db: Database) -> None:
    d = RadiusBackend(db, settings()).authenticate(login(REAUTH_PREFIX + "0" * 48))
    assert not d.accept and d.status == 401
    assert "no active session" in d.message


@pytest.mark.parametrize(("why", "reason"), [
    ("wrong token", "token"), ("another session's token", "token"),
    ("another MAC", "device"), ("too old", "old"), ("lifetime 0", "off"),
])
def test_refusals_say_why(db: Database, why: str, reason: str) -> None:
    token = start(db)
    lifetime = 3600.0
    mac = MAC
    if why == "wrong token":
        token = REAUTH_PREFIX + "f" * 48
    elif why == "another session's token":
        token = start(db, user="user2")
    elif why == "another MAC":
        mac = OTHER_MAC
        # even with a token made for that MAC: the session is the first MAC's
        with db.session() as s:
            cur = repo.active_session(s, "user1")
            assert cur is not None
            token = reauth_token(API_KEY, cur.id, OTHER_MAC)
    elif why == "too old":
        token = start(db, age=lifetime + 60)
    elif why == "lifetime 0":
        lifetime = 0
    d = RadiusBackend(db, settings(reauth_lifetime=lifetime)).authenticate(login(token, mac))
    assert not d.accept and d.framed_ip is None
    assert d.message.startswith("fast re-authentication refused: ")
    assert reason in d.message.removeprefix("fast re-authentication refused: ")


def test_refusals_count_towards_the_rate_limit(db: Database) -> None:
    start(db)
    backend = RadiusBackend(db, settings())
    bad = login(REAUTH_PREFIX + "0" * 48)
    for _ in range(MAX_FAILURES):
        assert not backend.authenticate(bad).accept
    # blocked now, even with the right password
    d = backend.authenticate(AuthRequest(user="user1", password="Pw-user1-long-enough", mac=MAC,
                                   nas="cpe2"))
    assert not d.accept and "too many attempts" in d.message
    assert "too many attempts" in backend.authorize(bad).message


def test_reauth_and_password_failures_share_the_count(db: Database) -> None:
    token = start(db)
    backend = RadiusBackend(db, settings())
    for _ in range(MAX_FAILURES - 1):
        backend.authenticate(AuthRequest(user="user1", password="wrong", mac=MAC, nas="cpe2"))
    assert not backend.authenticate(login(REAUTH_PREFIX + "0" * 48)).accept
    assert "too many attempts" in backend.authenticate(login(token)).message


def test_checking_a_password_holds_no_write_lock(db: Database,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The scrypt check (~50 ms) runs in a read-only transaction: a writer (a plan, a
    telemetry batch, another login's rehash) goes ahead meanwhile instead of queueing
    behind it on SQLite's one write lock. An old hash is still upgraded, afterwards."""
    import base64
    import hashlib
    import threading

    from netfate.db import passwords
    from netfate.db.repo import users

    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(b"Pw-user1-long-enough", salt=salt, n=1024, r=8, p=1, dklen=32)
    old = (f"scrypt$1024$8$1${base64.b64encode(salt).decode()}$"
           f"{base64.b64encode(digest).decode()}")
    with db.session() as s:
        repo.get_user(s, "user1").password_hash = old
    wrote: list[float] = []

    def verify_while_another_writes(password: str, encoded: str) -> bool:
        def write() -> None:
            t0 = time.monotonic()
            with db.session() as s:
                repo.upsert_node(s, "cpe9", role="cpe")
            wrote.append(time.monotonic() - t0)

        t = threading.Thread(target=write)
        t.start()
        t.join(5.0)  # a write lock held by the caller would keep it waiting (busy_timeout)
        return passwords.verify_password(password, encoded)

    monkeypatch.setattr(users, "verify_password", verify_while_another_writes)
    d = RadiusBackend(db, settings()).authenticate(
        AuthRequest(user="user1", password="Pw-user1-long-enough", mac=MAC, nas="cpe1"))
    assert d.accept
    assert wrote and wrote[0] < 2.0
    with db.session() as s:
        assert repo.get_user(s, "user1").password_hash.startswith("scrypt$16384$")
