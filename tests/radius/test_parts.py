"""The pure parts: the rate limiter, the Framed-IP pool, settings and secrets, the generated
FreeRADIUS configuration (checked by `freeradius -C`)."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import stat
from pathlib import Path

import pytest

from netfate.errors import Conflict, InvalidInput
from netfate.radius.pool import candidates, pick_address
from netfate.radius.ratelimit import FailureLimiter, client_key
from netfate.radius.server import FreeRadius, private_dir
from netfate.radius.settings import SECRETS_FILE, RadiusSettings
from netfate.settings import load_settings
from tests.radius.conftest import API_KEY, SECRET


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# -- rate limiter ------------------------------------------------------------------------------

def test_client_key_normalises_macs() -> None:
    forms = ["AA-BB-CC-DD-EE-FF", "aa:bb:cc:dd:ee:ff", "aabb.ccdd.eeff", "AABBCCDDEEFF"]
    assert {client_key(f, "cpe1") for f in forms} == {"mac:aa:bb:cc:dd:ee:ff"}
    assert client_key("not a mac", "cpe1") == "csid:not a mac"
    assert client_key(None, "cpe1") == client_key("", "cpe1") == "nas:cpe1"
    assert client_key(None, "cpe1") != client_key(None, "cpe2")


def test_limiter_blocks_after_max_failures_within_window_then_forgives() -> None:
    clock = Clock()
    lim = FailureLimiter(max_failures=3, window=60, backoff=30, clock=clock)
    assert lim.failure("a") is None
    assert lim.failure("a") is None
    assert lim.retry_after("a") is None
    assert lim.failure("a") == 30  # the third starts the back-off
    assert lim.retry_after("a") == 30
    assert lim.retry_after("b") is None  # another client is not affected
    clock.t += 29.5
    assert lim.retry_after("a") == 1
    clock.t += 0.5
    assert lim.retry_after("a") is None
    # The count started again: two more failures do not block.
    assert lim.failure("a") is None
    assert lim.failure("a") is None
    assert lim.retry_after("a") is None


def test_limiter_failures_outside_the_window_do_not_count() -> None:
    clock = Clock()
    lim = FailureLimiter(max_failures=3, window=10, backoff=30, clock=clock)
    lim.failure("a")
    lim.failure("a")
    clock.t += 10.5
    assert lim.failure("a") is None
    assert lim.retry_after("a") is None


def test_limiter_success_clears_the_record() -> None:
    lim = FailureLimiter(max_failures=2, window=60, backoff=30, clock=Clock())
    lim.failure("a")
    lim.success("a")
    assert lim.failure("a") is None
    assert len(lim) == 1


def test_limiter_memory_is_bounded_and_keeps_blocked_clients() -> None:
    clock = Clock()
    lim = FailureLimiter(max_failures=2, window=5, backoff=300, max_keys=100, clock=clock)
    lim.failure("attacker")
    lim.failure("attacker")  # blocked
    for i in range(10_000):  # a MAC-spraying flood
        lim.failure(f"spray{i}")
        if i % 1000 == 0:
            clock.t += 6  # old one-off failures have nothing left to say
    assert len(lim) <= 100
    # Records that still mean something outlive the expired ones while there is room.
    clock2 = Clock()
    lim2 = FailureLimiter(max_failures=2, window=5, backoff=300, max_keys=3, clock=clock2)
    lim2.failure("x")
    lim2.failure("x")  # blocked for 300 s
    lim2.failure("old1")
    lim2.failure("old2")
    clock2.t += 6
    lim2.failure("new")
    assert lim2.retry_after("x") is not None
    assert len(lim2) == 2


def test_limiter_checks_its_arguments() -> None:
    with pytest.raises(ValueError):
        FailureLimiter(max_failures=0)


# -- Framed-IP pool ----------------------------------------------------------------------------

def test_candidates_are_stable_cover_the_pool_and_skip_network_and_broadcast() -> None:
    pool = "10.90.100.0/29"
    a = list(candidates("user1", pool))
    assert a == list(candidates("user1", pool))
    assert sorted(a, key=ipaddress.IPv4Address) == [f"10.90.100.{i}" for i in range(1, 7)]
    starts = {next(candidates(f"u{i}", "10.90.100.0/22")) for i in range(50)}
    assert len(starts) > 40  # names spread over the pool


def test_pick_address_moves_past_taken_ones_and_fails_when_full() -> None:
    pool = "10.90.100.0/29"
    first, second, *_ = candidates("user1", pool)
    assert pick_address("user1", pool, set()) == first
    assert pick_address("user1", pool, {first}) == second
    with pytest.raises(Conflict, match="exhausted"):
        pick_address("user1", pool, set(candidates("x", pool)))


# -- settings ----------------------------------------------------------------------------------

def test_resolve_generates_secrets_once_private_and_shared(tmp_path: Path) -> None:
    a = RadiusSettings(secret="", api_key="").resolve(tmp_path)
    b = RadiusSettings(secret="", api_key="").resolve(tmp_path)
    assert (a.secret, a.api_key) == (b.secret, b.api_key)
    assert a.secret != a.api_key and len(a.secret) >= 16
    f = tmp_path / SECRETS_FILE
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    assert json.loads(f.read_text()) == {"secret": a.secret, "api_key": a.api_key}
    assert a.secret not in repr(a) and a.api_key not in repr(a)
    # Given values win over the stored ones.
    c = RadiusSettings(secret=SECRET, api_key="").resolve(tmp_path)
    assert (c.secret, c.api_key) == (SECRET, a.api_key)


def test_resolve_refuses_a_corrupt_secrets_file(tmp_path: Path) -> None:
    (tmp_path / SECRETS_FILE).write_text("[1, 2]")
    with pytest.raises(InvalidInput, match="remove it"):
        RadiusSettings(secret="", api_key="").resolve(tmp_path)


@pytest.mark.parametrize("field,value,match", [
    ("secret", "short", "secret must be"),
    ("secret", 'quote"in-the-secret-x', "secret must be"),
    ("secret", "${confdir}-abcdefghijk", "secret must be"),
    ("api_key", SECRET, "must differ"),
    ("host", "radius.example", "not an IP"),
    ("port", 0, "not a port"),
    ("clients", ("300.1.1.1",), "not an address"),
    ("clients", (), "at least one"),
    ("pool", "10.90.100.0/31", "/30 or more"),
    ("pool", "fd00::/64", "IPv4"),
    ("max_failures", 0, "rate limit"),
    ("reject_delay", 9, "reject_delay"),
])
def test_settings_check_names_the_bad_field(field: str, value: object, match: str) -> None:
    s = RadiusSettings(secret=SECRET, api_key=API_KEY)
    setattr(s, field, value)
    with pytest.raises(InvalidInput, match=match):
        s.check()


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETFATE_RADIUS_PORT", "11812")
    monkeypatch.setenv("NETFATE_RADIUS_CLIENTS", "127.0.0.1, 10.90.0.0/16")
    monkeypatch.setenv("NETFATE_RADIUS_SESSION_TIMEOUT", "3600")
    s = load_settings().radius
    assert (s.port, s.clients, s.session_timeout) == (11812, ("127.0.0.1", "10.90.0.0/16"), 3600)


# -- generated FreeRADIUS configuration ----------------------------------------------------------

def test_private_dir_is_prefixed(tmp_path: Path) -> None:
    assert private_dir(tmp_path) == tmp_path / "fate-radius"


def test_generated_config_passes_freeradius_check_and_is_private(tmp_path: Path) -> None:
    fr = FreeRadius(tmp_path, 18120, SECRET, "http://127.0.0.1:8181", api_key=API_KEY,
                    clients=("127.0.0.1", "10.90.0.0/16"))
    fr.check_config()  # freeradius -C: parses everything and loads rlm_rest
    raddb = fr.raddb
    assert raddb.is_relative_to(tmp_path / "fate-radius")
    files = [p for p in raddb.rglob("*") if p.is_file()]
    assert {p.relative_to(raddb).as_posix() for p in files} >= {
        "radiusd.conf", "clients.conf", "dictionary", "mods-enabled/rest",
        "mods-enabled/always", "mods-enabled/detail", "policy.d/netfate",
        "sites-enabled/netfate"}
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
        assert not re.search(r"@[A-Z_]+@", p.read_text()), f"placeholder left in {p}"
    # Traversable (not listable) when FreeRADIUS drops to its user, who must reach its own
    # radacct/; the configuration itself stays private.
    want = 0o711 if fr.run_as else 0o700
    assert stat.S_IMODE(fr.dir.stat().st_mode) == want
    assert stat.S_IMODE(raddb.stat().st_mode) == 0o700
    text = "".join(p.read_text() for p in files)
    assert "/etc/freeradius" not in text
    assert "require_message_authenticator = yes" in (raddb / "clients.conf").read_text()
    assert "10.90.0.0/16" in (raddb / "clients.conf").read_text()


def test_freeradius_refuses_unsafe_values(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        FreeRadius(tmp_path, 18120, 'bad"secret-0123456789', "http://127.0.0.1:1",
                   api_key=API_KEY)
    with pytest.raises(ValueError, match="api_url"):
        FreeRadius(tmp_path, 18120, SECRET, "http://127.0.0.1:1/${x}", api_key=API_KEY)
    with pytest.raises(ValueError, match="must not contain spaces"):
        FreeRadius(tmp_path / "a b", 18120, SECRET, "http://127.0.0.1:1", api_key=API_KEY)
