"""The lists that grow with time come in pages (ETSI GS NFV-SOL 013 §5.4.2.3): at most a
page per response, a Link header rel="next" to the rest, every row exactly once in order;
a marker that is not one of the list's is refused, never a 500."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from netfate.api_pages import get_all
from netfate.orchestrator.api import paging
from tests.api.conftest import MakeAgent
from tests.api.harness import wait_op, wait_until
from tests.api.test_api_faults import add_user, instantiate

API = "/api/v1"


def _pages(c: httpx.Client, path: str) -> list[list[dict[str, Any]]]:
    out, url = [], f"{API}{path}"
    while url:
        r = c.get(url)
        assert r.status_code == 200, r.text
        out.append(r.json())
        url = r.links.get("next", {}).get("url", "")
    return out


def test_notifications_and_operations_come_in_pages(
        client: httpx.Client, make_agent: MakeAgent, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = make_agent("cpe1")
    for k in range(5):
        agent.notify("probe", None, k=k)
    wait_until(lambda: len(client.get(f"{API}/notifications").json()) == 5, 5,
               "five notifications")
    for u in ("user1", "user2", "user3"):
        add_user(client, u)
        wait_op(client, instantiate(client, owner=u))
    whole_ops = client.get(f"{API}/vnf_lcm_op_occs").json()
    whole_notes = client.get(f"{API}/notifications").json()
    monkeypatch.setattr(paging, "PAGE_SIZE", 2)
    pages = _pages(client, "/notifications")
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [n["id"] for p in pages for n in p] == [n["id"] for n in whole_notes]  # newest first
    assert get_all(client, f"{API}/notifications") == whole_notes
    assert get_all(client, f"{API}/notifications", {"type": "nosuch"}) == []
    assert [len(p) for p in _pages(client, "/vnf_lcm_op_occs")] == [2, 1]
    assert get_all(client, f"{API}/vnf_lcm_op_occs") == whole_ops  # oldest first
    # a filter is kept in the next page's link
    r = client.get(f"{API}/notifications", params={"type": "probe"})
    assert "type=probe" in r.links["next"]["url"]
    # relative: the request's Host header is not echoed (probe of 2026-12-06)
    r = client.get(f"{API}/notifications", headers={"Host": "evil.example"})
    assert r.links["next"]["url"].startswith(f"{API}/notifications?"), r.headers["Link"]
    assert "evil" not in r.headers["Link"]


def _marker(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


@pytest.mark.parametrize("path", ["/notifications", "/vnf_lcm_op_occs"])
@pytest.mark.parametrize("marker", [
    "not-base64!", "AAAA", _marker("x"), _marker([1]), _marker([1, 2, 3]),
    _marker([True, 1]), _marker([1.0, 2**40]), _marker([None, 1]), _marker({"a": 1}),
    "QUFB" * 70,
    # a string the database cannot take: a lone surrogate (a 500 before, probe of
    # 2026-12-06) or a NUL (PostgreSQL's text refuses it)
    _marker([1, "\ud800"]), _marker([1.5, "\ud800"]), _marker([1.5, "a\u0000"]),
])
def test_a_marker_that_is_not_the_lists_is_refused(client: httpx.Client, path: str,
                                                     marker: str) -> None:
    r = client.get(f"{API}{path}", params={"nextpage_opaque_marker": marker})
    assert r.status_code == 422, (r.status_code, r.text)
    assert "nextpage_opaque_marker" in r.text
