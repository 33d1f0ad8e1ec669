"""Operator authentication (netfate.api_auth): /api/v1 needs the bearer token, the UI its
session cookie (and a CSRF token on its POSTs); the health check, FreeRADIUS's endpoints
and signed bundle URLs stay open."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import httpx

from netfate import api_auth
from tests.api.conftest import MakeLive
from tests.api.harness import AUTH, TOKEN, LiveOrchestrator


def test_api_needs_the_token(live: LiveOrchestrator) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-token"},
                    {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer"}):
        r = httpx.get(f"{live.url}/api/v1/users", headers=headers, timeout=10)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert "token" in r.json()["detail"]
        assert r.json()["title"] == "Unauthorized"
    # Two Authorization fields (which one counts?): 400, whichever order the good one has.
    for pair in ([("Authorization", "Bearer wrong"), ("Authorization", f"Bearer {TOKEN}")],
                 [("Authorization", f"Bearer {TOKEN}"), ("Authorization", "Bearer wrong")],
                 [("Authorization", f"Bearer {TOKEN}")] * 2):
        r = httpx.get(f"{live.url}/api/v1/users", headers=httpx.Headers(pair), timeout=10)
        assert r.status_code == 400 and "more than once" in r.json()["detail"], r.text
    # writes too, before the body is looked at
    r = httpx.post(f"{live.url}/api/v1/users", json={"name": "u", "password": "p"}, timeout=10)
    assert r.status_code == 401
    assert httpx.get(f"{live.url}/api/v1/users", headers=AUTH, timeout=10).json() == []


def test_open_paths(live: LiveOrchestrator) -> None:
    assert httpx.get(f"{live.url}/api/v1/health", timeout=10).status_code == 200
    # FreeRADIUS's endpoints answer with their own key's check, not the operator token's
    r = httpx.post(f"{live.url}/api/v1/radius/authorize", json={}, timeout=10)
    assert r.status_code == 401 and "Radius-Key" in r.json()["detail"]


def test_bundle_content_by_signed_url(live: LiveOrchestrator) -> None:
    sha = httpx.get(f"{live.url}/api/v1/vnf_packages", headers=AUTH,
                    timeout=10).json()[0]["sha256"]
    url = f"{live.url}/api/v1/vnf_packages/{sha}/content"
    assert httpx.get(url, timeout=10).status_code == 401
    assert httpx.get(url, params={"key": "0" * 32}, timeout=10).status_code == 401
    other = "f" * 64
    assert httpx.get(url, params={"key": api_auth.bundle_key(TOKEN, other)},
                     timeout=10).status_code == 401
    r = httpx.get(url, params={"key": api_auth.bundle_key(TOKEN, sha)}, timeout=10)
    assert r.status_code == 200 and r.content


def test_token_generated_into_the_state_dir(make_live: MakeLive, tmp_path: Path) -> None:
    live = make_live(state_dir=tmp_path / "gen", api_token="")
    path = tmp_path / "gen" / api_auth.TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = path.read_text().strip()
    assert len(token) >= 32
    assert httpx.get(f"{live.url}/api/v1/users", timeout=10).status_code == 401
    auth = api_auth.BearerAuth(state_dir=tmp_path / "gen")
    assert httpx.get(f"{live.url}/api/v1/users", auth=auth, timeout=10).status_code == 200


def test_ui_redirects_to_login(live: LiveOrchestrator) -> None:
    r = httpx.get(f"{live.url}/ui/", timeout=10)
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    r = httpx.get(f"{live.url}/", timeout=10, follow_redirects=True)
    assert str(r.url).endswith("/ui/login") and "token" in r.text.lower()
    # an htmx request is told where to go instead of getting the login page as a fragment
    r = httpx.get(f"{live.url}/ui/", headers={"HX-Request": "true"}, timeout=10)
    assert r.status_code == 401 and r.headers["hx-redirect"] == "/ui/login"


def test_ui_login_session_and_csrf(live: LiveOrchestrator) -> None:
    with httpx.Client(base_url=live.url, timeout=10) as c:
        r = c.post("/ui/login", data={"token": "wrong"})
        assert r.status_code == 401 and api_auth.SESSION_COOKIE not in c.cookies
        r = c.post("/ui/login", data={"token": TOKEN})
        assert r.status_code == 303
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert c.get("/ui/topology").status_code == 200
        # a POST action without the session's CSRF token is refused, and changes nothing
        r = c.post("/ui/users", data={"name": "csrf1", "password": "secret-1"})
        assert r.status_code == 403
        assert httpx.get(f"{live.url}/api/v1/users", headers=AUTH).json() == []
        session = c.cookies[api_auth.SESSION_COOKIE]
        r = c.post("/ui/users", data={"name": "csrf1", "password": "secret-1"},
                   headers={api_auth.CSRF_HEADER: api_auth.csrf_value(TOKEN, session)})
        assert r.status_code == 200
        assert [u["name"] for u in httpx.get(f"{live.url}/api/v1/users", headers=AUTH).json()
                ] == ["csrf1"]
        # the cookie does not open the API: that takes the bearer token
        assert c.get("/api/v1/users").status_code == 401
        c.post("/ui/logout", headers={api_auth.CSRF_HEADER: api_auth.csrf_value(TOKEN, session)})
        r = c.get("/ui/topology")
        assert r.status_code == 303 and r.headers["location"] == "/ui/login"


def test_node_marked_down_is_out_of_placement(client: httpx.Client, make_agent: Any) -> None:
    make_agent("cpe1")
    client.post("/api/v1/users", json={"name": "user1", "password": "secret1"})
    r = client.patch("/api/v1/nodes/cpe1", json={"admin_down": True})
    assert r.status_code == 200 and r.json()["admin_down"] is True
    r = client.post("/api/v1/vnf_instances", json={"nf": "firewall", "owner": "user1",
                                                   "node": "cpe1"})
    assert r.status_code == 409 and "marked down" in r.json()["detail"]
    assert client.patch("/api/v1/nodes/cpe1", json={"admin_down": "x"}).status_code == 422
    assert client.patch("/api/v1/nodes/nope", json={"admin_down": True}).status_code == 404
    assert client.patch("/api/v1/nodes/cpe1", json={"admin_down": False}).json()[
        "admin_down"] is False
    r = client.post("/api/v1/vnf_instances", json={"nf": "firewall", "owner": "user1",
                                                   "node": "cpe1"})
    assert r.status_code == 202, r.text
