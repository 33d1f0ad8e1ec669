"""What the API accepts as a user name or password round-trips through every path that uses
it (issue #16 input 7): one rule (netfate.credentials) for the API body, the repository and
the captive portal's form, so none accepts what another cannot carry."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from urllib.parse import urlencode

import pytest
from pydantic import ValidationError

from netfate import credentials
from netfate.access.portal import BadRequest, parse_login
from netfate.db import Database, repo
from netfate.errors import InvalidInput
from netfate.orchestrator.api.schemas import UserCreate, UserPatch
from netfate.radius.backend import reauth_token

FORM = "application/x-www-form-urlencoded"

BAD_PASSWORDS = [
    ("reauth:my-own-pass", "reauth:"),  # the issue's: RADIUS reads it as a session token
    ("x" * 200, "128 bytes"),  # the issue's: the portal and RFC 2865 cap it at 128
    ("\u00e9" * 65, "128 bytes"),  # 65 characters, 130 bytes of UTF-8
    ("pass\x00word", "control"),
    ("pass\nword", "control"),
    ("pass\tword", "control"),
    ("pass\x7fword", "control"),
    (" password", "white space"),
    ("password ", "white space"),
    ("passw\u00a0", "white space"),  # no-break space: str.strip() knows it
    ("cafe\u0301-pass", "NFC"),
    # RFC 8265 OpaqueString's disallowed kinds (new-user probe, 2026-12-04: accepted)
    ("pass\u202eword", "202E"),  # right-to-left override (Cf)
    ("pass\u2028word", "2028"),  # line separator (Zl)
    ("pass\u2029word", "2029"),  # paragraph separator (Zp)
    ("pass\u200bword", "200B"),  # zero width space (Cf)
    ("pass\ue000word", "E000"),  # private use (Co)
    ("pass\uffffword", "FFFF"),  # a noncharacter
]
# What no login can carry: refused at the portal's form too, not sent to RADIUS. The rest
# of BAD_PASSWORDS is refused when a password is set, and goes on to RADIUS at a login (a
# password set under an older rule still logs in).
CARRY = ("reauth:", "128 bytes", "control")
GOOD_PASSWORDS = ["secret1", "x" * 128, "\u00e9" * 64, "pass word", "caf\u00e9-pass",
                  "r\u00e9auth:x", "Reauth:x", "a:reauth:b", "pass\U0001f600",
                  "\u043f\u0430\u0440\u043e\u043b\u044c",
                  # (review, 2026-12-05: refused) RFC 8264 CONTEXTJ joiners; a code point
                  # newer than this Python's Unicode data (U+0378 stands in for one)
                  "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
                  "\u0915\u094d\u200d\u0937-pw", "\U0001f469\u200d\U0001f4bb-pw",
                  "pass\u0378word"]


@pytest.mark.parametrize(("password", "words"), BAD_PASSWORDS)
def test_a_password_no_path_can_carry_is_refused_everywhere(password: str, words: str,
                                                            tmp_path: Path) -> None:
    assert words in (credentials.password_problem(password) or "")
    # the API body (a 422 naming the rule)
    with pytest.raises(ValidationError, match=words):
        UserCreate(name="user2", password=password)
    with pytest.raises(ValidationError, match=words):
        UserPatch(password=password)
    # the repository
    db = Database.create(f"sqlite:///{tmp_path}/db.sqlite")
    with db.session() as s, pytest.raises(InvalidInput, match=words):
        repo.create_user(s, "user2", password)
    # the portal's form: refused in words, never sent to RADIUS, if no login can carry it
    body = urlencode({"username": "user2", "password": password}).encode()
    if words in CARRY:
        with pytest.raises(BadRequest, match=words):
            parse_login(FORM, body)
    else:  # in NFC, as OpaqueString's enforcement compares it (RFC 8265 §4.2.2)
        assert parse_login(FORM, body)[1] == unicodedata.normalize("NFC", password)


@pytest.mark.parametrize("password", GOOD_PASSWORDS)
def test_a_password_the_api_accepts_reaches_radius_intact(password: str,
                                                          tmp_path: Path) -> None:
    UserCreate(name="user2", password=password)
    db = Database.create(f"sqlite:///{tmp_path}/db.sqlite")
    with db.session() as s:
        repo.create_user(s, "user2", password)
    with db.session() as s:
        assert repo.authenticate_user(s, "user2", password) is not None
    body = urlencode({"username": "user2", "password": password}).encode()
    assert parse_login(FORM, body)[:2] == ("user2", password)


def test_reauth_tokens_are_never_a_password() -> None:
    token = reauth_token("k" * 32, "session", "02:00:00:00:00:01")
    assert token.startswith(credentials.REAUTH_PREFIX)
    assert credentials.password_problem(token) is not None


@pytest.mark.parametrize("name", ["", "a" * 33, "Alice", "al ice", "..", "-a", "user\n",
                                  "us\u0435r", "user@realm", "a/b", "\u0661"])
def test_user_names_follow_one_rule(name: str) -> None:
    assert credentials.username_problem(name) is not None
    with pytest.raises(ValidationError):
        UserCreate(name=name, password="secret1")
    body = urlencode({"username": name, "password": "secret1"}).encode()
    with pytest.raises(BadRequest, match="username must be"):
        parse_login(FORM, body)


def test_good_user_names() -> None:
    for name in ("user1", "a", "a" * 32, "john.doe", "x_y-z"):
        assert credentials.username_problem(name) is None
        UserCreate(name=name, password="secret1")
        parse_login(FORM, urlencode({"username": name, "password": "pw"}).encode())
