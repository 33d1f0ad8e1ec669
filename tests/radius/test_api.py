"""The orchestrator's /api/v1/radius endpoints called directly, as rlm_rest calls them: only
with the key (401 otherwise, whatever the body), 400/422/413 on malformed bodies that never
echo a password, and the answers in rlm_rest's format."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netfate.db import repo
from netfate.radius.backend import octets_as_text
from netfate.radius.pool import candidates
from netfate.radius.settings import API_KEY_HEADER, SECRETS_FILE, RadiusSettings
from tests.radius.conftest import API_KEY, AUTH, USERS, LiveOrchestrator, radius_settings

PATHS = ["/api/v1/radius/authorize", "/api/v1/radius/authenticate"]
PW = USERS["user1"]


def attrs(user: str = "user1", password: str = PW, mac: str | None = "02-aa-00-00-00-01",
          nas: str | None = "cpe1") -> dict[str, Any]:
    """A body as rlm_rest sends it (body = 'json')."""
    body: dict[str, Any] = {
        "User-Name": {"type": "string", "value": [user]},
        "User-Password": {"type": "string", "value": [password]},
        "Message-Authenticator": {"type": "octets", "value": ["0x00"]},
    }
    if mac:
        body["Calling-Station-Id"] = {"type": "string", "value": [mac]}
    if nas:
        body["NAS-Identifier"] = {"type": "string", "value": [nas]}
    return body


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveOrchestrator]:
    o = LiveOrchestrator(tmp_path_factory.mktemp("radius-api"), radius_settings())
    o.start()
    try:
        with httpx.Client(base_url=o.url, timeout=15, headers=AUTH) as c:
            for name, pw in USERS.items():
                c.post("/api/v1/users", json={"name": name, "password": pw}).raise_for_status()
        yield o
    finally:
        o.stop()


@pytest.fixture
def http(live: LiveOrchestrator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=15, headers=AUTH) as c:
        yield c


KEYED = {API_KEY_HEADER: API_KEY}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("headers", [{}, {API_KEY_HEADER: "wrong"},
                                     {API_KEY_HEADER: API_KEY + "x"},
                                     {API_KEY_HEADER.lower(): API_KEY[:-1]},
                                     {"Authorization": f"Bearer {API_KEY}"}])
@pytest.mark.parametrize("body", [b"", b"not json", b"[]"])
def test_without_the_key_401_whatever_the_body(http: httpx.Client, path: str,
                                               headers: dict[str, str], body: bytes) -> None:
    r = http.post(path, content=body or None, headers=headers)
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert API_KEY_HEADER in r.json()["detail"]


@pytest.mark.parametrize("path", PATHS)
def test_right_password_without_the_key_is_still_401(http: httpx.Client, path: str) -> None:
    r = http.post(path, json=attrs())
    assert r.status_code == 401 and "reply:Framed-IP-Address" not in r.text


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("body,status,says", [
    (b"", 400, "malformed JSON"),
    (b"{", 400, "malformed JSON"),
    (b"\xff\xfe", 400, "malformed JSON"),
    (b"[" * 30000, 400, "nested too deeply"),  # was a 500 (the decoder's RecursionError)
    (b'{"User-Name": ' * 4000, 400, "nested too deeply"),
    (b"[]", 422, "(body)"),
    (b"null", 422, "(body)"),
    (b'"User-Name"', 422, "(body)"),
    (b"{}", 422, "User-Name"),
    (b'{"User-Name": {"value": ["user1"]}}', 422, "User-Password"),
    (b'{"User-Name": "user1", "User-Password": "x"}', 422, "User-Name"),
    (b'{"User-Name": {"value": []}, "User-Password": {"value": ["x"]}}', 422, "User-Name.value"),
    (b'{"User-Name": {"value": [1]}, "User-Password": {"value": ["x"]}}', 422, "User-Name.value"),
    (b'{"User-Name": {"value": ["u"]}, "User-Password": {"value": ["x"]},'
     b' "Calling-Station-Id": {"value": "aa"}}', 422, "Calling-Station-Id"),
    # (new-user probe, 2026-12-04: accepted) a Calling-Station-Id that is no MAC, NaN
    (b'{"User-Name": {"value": ["u"]}, "User-Password": {"value": ["x"]},'
     b' "Calling-Station-Id": {"value": ["zz; DROP"]}}', 422, "MAC address"),
    (b'{"User-Name": {"value": ["u"]}, "User-Password": {"value": ["x"]},'
     b' "Calling-Station-Id": {"value": ["02-00-00-00-00-0g"]}}', 422, "MAC address"),
    (b'{"User-Name": {"value": ["u"]}, "User-Password": {"value": ["x"]}, "x": NaN}', 400,
     "NaN is not a JSON number"),
    (b'{"User-Name": {"value": ["u"]}, "User-Password": {"value": ["x"]}, "x": Infinity}',
     400, "Infinity"),
    (b'{"User-Name": {"value": ["u"]}, "User-Name": {"value": ["v"]},'
     b' "User-Password": {"value": ["x"]}}', 422, "User-Name"),
])
def test_malformed_bodies(http: httpx.Client, path: str, body: bytes, status: int,
                          says: str) -> None:
    r = http.post(path, content=body, headers={**KEYED, "content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert says in r.json()["detail"]


@pytest.mark.parametrize("path", PATHS)
def test_errors_never_echo_the_password(http: httpx.Client, path: str) -> None:
    secret_pw = "Sup3r-S3cret-" + "z" * 300  # too long: rejected by validation
    r = http.post(path, json=attrs(password=secret_pw), headers=KEYED)
    assert r.status_code == 422
    assert "Sup3r" not in r.text
    body = attrs()
    body["User-Password"]["value"] = [secret_pw[:20], 7]
    r = http.post(path, json=body, headers=KEYED)
    assert r.status_code == 422 and "Sup3r" not in r.text


def test_oversized_body_is_413(http: httpx.Client) -> None:
    r = http.post(PATHS[1], content=b'{"x": "' + b"a" * 70_000 + b'"}', headers=KEYED)
    assert r.status_code == 413


def test_authorize_says_go_on_to_rest(http: httpx.Client) -> None:
    r = http.post(PATHS[0], json=attrs(password="anything, not checked here"), headers=KEYED)
    assert (r.status_code, r.json()) == (200, {"control:Auth-Type": "rest"})


def test_authenticate_answers_in_rlm_rest_format(http: httpx.Client,
                                                 live: LiveOrchestrator) -> None:
    r = http.post(PATHS[1], json=attrs(), headers=KEYED)
    assert r.status_code == 200
    out = r.json()
    assert out["reply:Reply-Message"] == {"value": ["authenticated"], "do_xlat": False}
    ip = out["reply:Framed-IP-Address"]
    assert ip == http.get("/api/v1/users/user1").json()["framed_ip"]
    assert next(candidates("user1", "10.90.100.0/22")) == ip  # first choice, in a fresh DB

    r = http.post(PATHS[1], json=attrs(password="wrong"), headers=KEYED)
    assert r.status_code == 401
    assert r.json() == {"reply:Reply-Message": {
        "value": ["authentication failed: wrong user name or password"], "do_xlat": False}}
    # An unknown user gets exactly the same answer: names can't be probed.
    r2 = http.post(PATHS[1], json=attrs(user="nobody", password="wrong"), headers=KEYED)
    assert (r2.status_code, r2.json()) == (401, r.json())
    r3 = http.post(PATHS[1], json=attrs(user="bad\x00name"), headers=KEYED)
    assert r3.status_code == 401


def test_a_user_keeps_a_framed_ip_set_by_the_operator_and_collisions_move_on(
        http: httpx.Client, live: LiveOrchestrator) -> None:
    assert live.orch.db is not None
    with live.orch.db.session() as s:
        repo.update_user(s, "user2", framed_ip="192.0.2.77")
        # user3's first choice is taken by someone else already.
        repo.create_user(s, "squatter", "pw-squatter",
                         framed_ip=next(candidates("user3", "10.90.100.0/22")))
    r = http.post(PATHS[1], json=attrs("user2", USERS["user2"]), headers=KEYED)
    assert r.json()["reply:Framed-IP-Address"] == "192.0.2.77"
    r = http.post(PATHS[1], json=attrs("user3", USERS["user3"]), headers=KEYED)
    _first, second, *_ = candidates("user3", "10.90.100.0/22")
    assert r.json()["reply:Framed-IP-Address"] == second


def test_rate_limit_per_mac_at_the_api(http: httpx.Client) -> None:
    mac = "02-aa-00-00-00-99"
    for i in range(5):
        r = http.post(PATHS[1], json=attrs(password=f"guess{i}", mac=mac), headers=KEYED)
        assert r.status_code == 401
    assert "too many attempts" in r.json()["reply:Reply-Message"]["value"][0]
    for path in PATHS:  # refused at authorize already, and at authenticate
        r = http.post(path, json=attrs(mac=mac), headers=KEYED)
        assert r.status_code == 401
        assert "too many attempts, retry in" in r.json()["reply:Reply-Message"]["value"][0]
    # The same MAC written another way is the same client.
    r = http.post(PATHS[1], json=attrs(mac="02:AA:00:00:00:99"), headers=KEYED)
    assert r.status_code == 401
    r = http.post(PATHS[1], json=attrs(mac="02-aa-00-00-00-98"), headers=KEYED)
    assert r.status_code == 200


def test_logs_say_why_but_never_the_password(http: httpx.Client,
                                             caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="netfate.radius"):
        http.post(PATHS[1], json=attrs(password="Wr0ng-pw-zzz", mac="02-aa-00-00-01-01"),
                  headers=KEYED)
        http.post(PATHS[1], json=attrs(user="ghost", password="Gh0st-pw-zzz",
                                       mac="02-aa-00-00-01-01"), headers=KEYED)
        http.post(PATHS[1], json=attrs(mac="02-aa-00-00-01-01"), headers=KEYED)
    text = caplog.text
    assert "wrong password" in text and "unknown user" in text and "RADIUS accept" in text
    for pw in ("Wr0ng-pw-zzz", "Gh0st-pw-zzz", PW):
        assert pw not in text


def test_settings_without_pinning_come_from_the_state_dir(tmp_path: Path) -> None:
    """No settings given to the app: the key is generated into the orchestrator's state
    directory, where FreeRADIUS's starter (settings_for) finds the same one."""
    o = LiveOrchestrator(tmp_path / "state", radius=None)
    o.start()
    try:
        with httpx.Client(base_url=o.url, timeout=15, headers=AUTH) as c:
            assert c.post(PATHS[0], json=attrs()).status_code == 401
            key = RadiusSettings(secret="", api_key="").resolve(tmp_path / "state").api_key
            assert (tmp_path / "state" / SECRETS_FILE).exists()
            r = c.post(PATHS[0], json=attrs(), headers={API_KEY_HEADER: key})
            assert r.status_code == 200
    finally:
        o.stop()


@pytest.mark.parametrize("password", ["päss-wörd1", "abc€", "ab😀cd", "€" * 42, "Ã¤-real"])
def test_non_ascii_passwords_as_rlm_rest_escapes_them(http: httpx.Client,
                                                      password: str) -> None:
    """(new-user probe, 2026-12-05: no non-ASCII password ever worked at the portal)
    FreeRADIUS 3.2 sends each octet over 0x7F as its own \\u00XX escape; real Unicode from
    another caller works too, unless it reads as such octets."""
    name = f"nonascii{len(password)}{ord(password[1]) % 97}"
    http.post("/api/v1/users", json={"name": name, "password": password}).raise_for_status()
    as_octets = password.encode("utf-8").decode("latin-1")
    # Real Unicode is taken as it is unless it reads as escaped octets ("Ã¤" as "ä"):
    # FreeRADIUS, the one caller, never sends it so.
    for sent in [as_octets] + ([password] if octets_as_text(password) == password else []):
        r = http.post(PATHS[1], json=attrs(user=name, password=sent,
                                           mac="02-aa-00-00-0e-01"), headers=KEYED)
        assert r.status_code == 200, (sent, r.text)
    wrong = (password + "x").encode("utf-8").decode("latin-1")
    r = http.post(PATHS[1], json=attrs(user=name, password=wrong, mac="02-aa-00-00-0e-02"),
                  headers=KEYED)
    assert r.status_code == 401
