"""The HTTP layer of the orchestrator's server (API, UI, /metrics), over a real socket: a
request with a missing, repeated or invalid Host, or an absolute URL for another host, gets
400 naming what is wrong before any route or authentication sees it (RFC 9112 §3.2); and a
204 answer carries no content, nor a Content-Type (RFC 9110 §15.3.5)."""

from __future__ import annotations

import httpx
import pytest

from netfate import api_auth
from tests.api.conftest import MakeAgent
from tests.api.harness import AUTH, TOKEN, LiveOrchestrator, wait_op, wait_until
from tests.api.test_api_faults import API, FW, add_user, instantiate
from tests.api.test_api_packages import _upload
from tests.local_http import exchange

AUTH_LINE = f"Authorization: {AUTH['Authorization']}\r\n".encode()


@pytest.mark.parametrize("path", ["/api/v1/health", "/api/v1/users", "/ui/login",
                                  "/metrics"])
def test_hostile_hosts_get_400_on_the_api_the_ui_and_metrics(live: LiveOrchestrator,
                                                              path: str) -> None:
    own = f"127.0.0.1:{live.port}".encode()
    line = f"GET {path} HTTP/1.1\r\n".encode()
    for head, words in (
            (line, b"Missing mandatory Host"),
            (line + b"Host:\r\n", b"is empty"),
            (line + b"Host: 127.0.0.1 evil\r\n", b"'127.0.0.1 evil'"),
            (line + b"Host: evil\"><script>\r\n", b"'\"'"),
            (line + b"Host: " + own + b"\r\nHost: evil.example\r\n", b"multiple Host"),
            (f"GET http://evil.example{path} HTTP/1.1\r\n".encode() + b"Host: " + own +
             b"\r\n", b"'evil.example'")):
        status, rest = exchange(live.port, head + AUTH_LINE + b"Connection: close\r\n\r\n")
        assert status == 400 and words in rest, (head, rest[:400])
    # The server's own host, as an absolute URL (RFC 9112 §3.2.2: a server MUST accept it),
    # is served as its path.
    status, rest = exchange(live.port, f"GET http://{own.decode()}{path} HTTP/1.1\r\n"
                            .encode() + b"Host: " + own + b"\r\n" + AUTH_LINE +
                            b"Connection: close\r\n\r\n")
    assert status == 200, rest[:400]


@pytest.mark.parametrize(("path", "auth"), [("/ui/login/", b""), ("/docs/", b""),
                                           ("/metrics/", b""), ("/api/v1/users/", AUTH_LINE)])
def test_a_trailing_slash_redirect_does_not_echo_the_host(live: LiveOrchestrator, path: str,
                                                          auth: bytes) -> None:
    """Starlette's trailing-slash redirect was built from the request's Host: `Host:
    evil.com` got `Location: http://evil.com/ui/login`, without authentication (probe of
    2026-12-06). Now it is relative."""
    for host in (b"evil.com", f"127.0.0.1:{live.port}".encode()):
        status, rest = exchange(live.port, f"GET {path} HTTP/1.1\r\n".encode() + b"Host: " +
                                host + b"\r\n" + auth + b"Connection: close\r\n\r\n")
        assert status == 307, rest[:400]
        location = next(line for line in rest.split(b"\r\n")
                        if line.lower().startswith(b"location:"))
        assert location.split(b":", 1)[1].strip() == path.rstrip("/").encode(), location
        assert b"evil" not in rest


# Every route of the API that answers 204 (its OpenAPI says so): the test calls each.
NO_CONTENT = {
    ("DELETE", "/api/v1/users/{name}"), ("DELETE", "/api/v1/notifications/{nid}"),
    ("PUT", "/api/v1/vnf_instances/{iid}/mute"), ("DELETE", "/api/v1/vnf_instances/{iid}/mute"),
    ("DELETE", "/api/v1/subscriptions/{sid}"), ("DELETE", "/api/v1/vnf_packages/{sha256}"),
}


def _no_content(r: httpx.Response) -> None:
    assert r.status_code == 204, (r.request.method, r.request.url, r.text)
    assert "content-type" not in r.headers, (r.request.url, r.headers)
    assert r.headers.get("content-length", "0") == "0" and r.content == b"", r.headers


def test_every_204_answer_has_no_content_type_and_no_body(
        live: LiveOrchestrator, client: httpx.Client, make_agent: MakeAgent) -> None:
    """DELETE /users/u answered 204 with Content-Type: application/json (probe of
    2026-12-06): so did every route declared 204, FastAPI's default response class being
    JSON's."""
    paths = client.get("/openapi.json").json()["paths"]
    declared = {(m.upper(), path) for path, ops in paths.items()
                for m, op in ops.items() if "204" in op.get("responses", {})}
    assert declared == NO_CONTENT, "a 204 route to add to this test (or one gone)"

    agent = make_agent("cpe1")
    add_user(client)
    add_user(client, "user2")
    assert wait_op(client, instantiate(client))["operation_state"] == "COMPLETED"
    agent.notify("port-scan", FW, src="10.0.0.9")
    (nid,) = wait_until(lambda: [n["id"] for n in client.get(f"{API}/notifications").json()],
                        5, "the notification to be stored")
    r = client.post(f"{API}/subscriptions", json={"callbackUri": "http://127.0.0.1:9/cb"})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    unused = _upload(client, "0.5", b"unused\n")

    _no_content(client.delete(f"{API}/users/user2"))
    _no_content(client.delete(f"{API}/notifications/{nid}"))
    _no_content(client.put(f"{API}/vnf_instances/{FW}/mute"))
    _no_content(client.delete(f"{API}/vnf_instances/{FW}/mute"))
    _no_content(client.delete(f"{API}/subscriptions/{sid}"))
    _no_content(client.delete(f"{API}/vnf_packages/{unused}"))

    # The UI's logout answers 204 (htmx follows its HX-Redirect) and is no route of 204.
    with httpx.Client(base_url=live.url, timeout=10) as ui:
        assert ui.post("/ui/login", data={"token": TOKEN}).status_code == 303
        session = ui.cookies[api_auth.SESSION_COOKIE]
        r = ui.post("/ui/logout", headers={
            api_auth.CSRF_HEADER: api_auth.csrf_value(TOKEN, session)})
        _no_content(r)
        assert r.headers["hx-redirect"] == "/ui/login"
