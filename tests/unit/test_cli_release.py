"""`netfate users idle` and `logout`: what was released, as a table, or one line saying
nothing was (it printed "0 intents"); the user's name is checked before any request."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from netfate.cli.main import app

RELEASED = {"intents": [{"kind": "release", "nf": "firewall", "node": "cpe1",
                         "instance_id": "cpe1-alice-firewall", "reason": "idle"}],
            "vnf_lcm_op_occs": ["op1"], "reasons": []}
NOTHING = {"intents": [], "vnf_lcm_op_occs": [], "reasons": ["alice: no NFs placed"]}


class Api:
    """The orchestrator's answers: `next` is the body of the next 202; `asked` the
    requests made."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.next: dict[str, Any] = {}

    def request(self, method: str, url: str, **_kw: Any) -> httpx.Response:
        self.asked.append(f"{method} {url}")
        return httpx.Response(202, json=self.next, request=httpx.Request(method, url))


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Api:
    monkeypatch.setenv("NETFATE_API", "http://127.0.0.1:9")
    monkeypatch.setenv("NETFATE_API_TOKEN", "t")
    fake = Api()
    monkeypatch.setattr(httpx, "request", fake.request)
    return fake


@pytest.mark.parametrize("command", ["idle", "logout"])
def test_what_was_released_or_that_nothing_was(command: str, api: Api) -> None:
    api.next = RELEASED
    r = CliRunner().invoke(app, ["users", command, "alice"])
    assert r.exit_code == 0, r.output
    assert "cpe1-alice-firewall" in r.output and "intents" not in r.output
    api.next = NOTHING
    r = CliRunner().invoke(app, ["users", command, "alice"])
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert "user alice: nothing to release" in out and "alice: no NFs placed" in out
    assert api.asked == [f"POST http://127.0.0.1:9/api/v1/users/alice/{command}"] * 2


@pytest.mark.parametrize("command", ["idle", "logout"])
def test_a_bad_name_is_refused_before_any_request(command: str, api: Api) -> None:
    r = CliRunner().invoke(app, ["users", command, "User 1"])
    assert r.exit_code == 2, r.output
    assert "Invalid value" in r.output and api.asked == []
