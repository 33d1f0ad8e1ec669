"""netfate.api_auth: where the operator token comes from, and the checks the gate uses."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from netfate import api_auth, paths
from netfate.settings import load_settings


def test_token_generated_once_0600(tmp_path: Path) -> None:
    tok = api_auth.ensure_token(tmp_path)
    assert len(tok) >= 32 and api_auth.ensure_token(tmp_path) == tok
    assert stat.S_IMODE(api_auth.token_path(tmp_path).stat().st_mode) == 0o600
    assert api_auth.ensure_token(tmp_path / "other", given="given-token") == "given-token"
    assert not (tmp_path / "other").exists()


def test_clients_find_the_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETFATE_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setattr(paths, "_run_dir", tmp_path / "run")  # not a testbed that is up
    monkeypatch.setenv("NETFATE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("NETFATE_API_TOKEN", raising=False)
    assert api_auth.find_token(load_settings()) is None
    assert api_auth.auth_headers(load_settings()) == {}
    state = api_auth.ensure_token(tmp_path / "state")
    assert api_auth.find_token(load_settings()) == state
    run = api_auth.ensure_token(tmp_path / "run" / "orchestrator")  # the testbed's first
    assert api_auth.find_token(load_settings()) == run
    mine = api_auth.ensure_token(tmp_path / "mine")
    assert api_auth.find_token(load_settings(), state_dir=tmp_path / "mine") == mine
    monkeypatch.setenv("NETFATE_API_TOKEN", "from-the-environment")
    assert api_auth.auth_headers(load_settings()) == {
        "Authorization": "Bearer from-the-environment"}


def test_bearer_auth_renews_a_stale_token(tmp_path: Path) -> None:
    api_auth.ensure_token(tmp_path, given="")
    current = api_auth.read_token(tmp_path)
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        ok = request.headers.get("authorization") == f"Bearer {current}"
        return httpx.Response(200 if ok else 401)

    auth = api_auth.BearerAuth(state_dir=tmp_path, settings=load_settings())
    auth._token = "stale"  # a token read before the orchestrator was restarted afresh
    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as c:
        assert c.get("http://x/api/v1/nodes").status_code == 200
    assert seen == ["Bearer stale", f"Bearer {current}"]


def test_checks() -> None:
    t = "t" * 40
    assert api_auth.bearer_ok(f"Bearer {t}", t) and api_auth.bearer_ok(f"bearer {t}", t)
    assert not api_auth.bearer_ok(f"Basic {t}", t) and not api_auth.bearer_ok(None, t)
    assert not api_auth.bearer_ok("Bearer x", t)
    sha = "a" * 64
    assert api_auth.bundle_key_ok(t, sha, api_auth.bundle_key(t, sha))
    assert not api_auth.bundle_key_ok(t, "b" * 64, api_auth.bundle_key(t, sha))
    s = api_auth.session_value(t, now=1000.0)
    assert api_auth.session_ok(t, s, now=1001.0)
    assert not api_auth.session_ok(t, s, now=1000.0 + api_auth.SESSION_TTL_S + 1)  # expired
    assert not api_auth.session_ok("u" * 40, s, now=1001.0)  # another token
    assert not api_auth.session_ok(t, "garbage", now=1001.0)
    assert api_auth.csrf_ok(t, s, api_auth.csrf_value(t, s))
    assert not api_auth.csrf_ok(t, s, api_auth.csrf_value(t, "other"))
    assert not api_auth.csrf_ok(t, None, "x")
