"""netfate.api_pages.follow: the next page is fetched from the server asked, whatever host
its Link names (a reflected Host header must not get the caller's token elsewhere)."""

from __future__ import annotations

import httpx

from netfate.api_pages import get_all


def test_pages_are_followed_on_the_server_asked_only() -> None:
    asked: list[str] = []

    def answer(req: httpx.Request) -> httpx.Response:
        asked.append(str(req.url))
        if "after" not in req.url.params:
            return httpx.Response(200, json=[1, 2], headers={
                "Link": '<http://evil.example/api/v1/x?after=2>; rel="next"'})
        if req.url.params["after"] == "2":
            return httpx.Response(200, json=[3], headers={
                "Link": '</api/v1/x?after=3>; rel="next"'})  # relative, as the API's
        return httpx.Response(200, json=[])

    with httpx.Client(base_url="http://127.0.0.1:8181",
                      transport=httpx.MockTransport(answer)) as c:
        assert get_all(c, "/api/v1/x") == [1, 2, 3]
    assert asked == ["http://127.0.0.1:8181/api/v1/x",
                     "http://127.0.0.1:8181/api/v1/x?after=2",
                     "http://127.0.0.1:8181/api/v1/x?after=3"]
