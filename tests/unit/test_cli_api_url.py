"""NETFATE_API that is not the orchestrator's base URL, and an answer that is not the API's
JSON: one line naming the problem, exit 1 (they ended in tracebacks: InvalidURL, TypeError,
JSONDecodeError, AttributeError; new-user probe, 2026-12-04)."""

from __future__ import annotations

import http.server
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from netfate.cli import client
from netfate.cli.main import app
from tests.local_http import serving


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("NETFATE_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("NETFATE_API_TOKEN", "t" * 32)
    client.api.cache_clear()
    client.auth.cache_clear()
    yield
    client.api.cache_clear()
    client.auth.cache_clear()


def _run(monkeypatch: pytest.MonkeyPatch, api: str, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("NETFATE_API", api)
    r = CliRunner().invoke(app, list(args))
    assert "Traceback" not in r.output and not isinstance(r.exception, (TypeError, KeyError,
                                                                        AttributeError,
                                                                        ValueError)), r.output
    return r.exit_code, r.output


@pytest.mark.parametrize(("api", "words"), [
    ("http://[::1", "not a URL"),
    ("http://127.0.0.1:99999", "not a URL"),
    ("ftp://127.0.0.1:8181", "http://HOST"),
    ("127.0.0.1:8181", "http://HOST"),
    ("http://", "http://HOST"),
    ("http://127.0.0.1:8181/metrics?", "without '?' or '#'"),
    ("http://127.0.0.1:8181/api/v1/health#", "without '?' or '#'"),
    ("http://u:p@127.0.0.1:8181", "user or password"),
    ("http://127.0.0.1:8181/\u00e9", "printable ASCII"),
])
def test_a_bad_api_url_is_named(monkeypatch: pytest.MonkeyPatch, api: str,
                                words: str) -> None:
    code, out = _run(monkeypatch, api, "nodes", "list")
    assert code == 1, out
    assert "NETFATE_API" in out and words in out, out


class _Page(http.server.BaseHTTPRequestHandler):
    """A web server that is not the orchestrator: HTML, or JSON of the wrong shape."""

    def do_GET(self) -> None:
        if self.path.startswith("/html"):
            body, kind = b"<html>a login page</html>", "text/html"
        elif self.path.startswith("/object"):
            body, kind = b'{"ok": true}', "application/json"
        else:
            body, kind = b"[1, 2", "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def page() -> Iterator[str]:
    with serving(_Page) as url:
        yield url


@pytest.mark.parametrize("prefix", ["/html", "/object", "/broken"])
@pytest.mark.parametrize("command", [["nodes", "list"], ["ops", "list"], ["users", "list"],
                                     ["nfs", "list"], ["ops", "show", "op1"]])
def test_an_answer_that_is_not_the_apis_json_is_named(
        monkeypatch: pytest.MonkeyPatch, page: str, prefix: str, command: list[str]) -> None:
    code, out = _run(monkeypatch, page + prefix, *command)
    if prefix == "/object" and command[:2] == ["ops", "show"]:  # an object, as expected
        assert code == 0, out
        return
    assert code == 1, out
    assert "not the API's JSON" in out and "NETFATE_API" in out, out
