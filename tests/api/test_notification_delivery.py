"""Lifecycle notifications reach their subscribers (SOL003-style), each apart from the others:
one that never answers delays nobody else's (probe of 2026-12-05: three silent subscribers
held a fourth's notifications ~9 s per event, the last ~55 s late)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from tests.api.conftest import MakeAgent
from tests.api.harness import wait_op, wait_until
from tests.api.test_api_faults import API, add_user, instantiate


class _Listener:
    """An HTTP callback on loopback that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.at: list[float] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length", "0"))
                listener.bodies.append(json.loads(self.rfile.read(size)))
                listener.at.append(time.monotonic())
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/cb"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def _silent() -> Iterator[str]:
    """A callback that accepts connections and never answers (the dispatcher's 3 s
    timeout runs out on each POST)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/slow"
    finally:
        sock.close()


def test_a_silent_subscriber_delays_no_other(client: httpx.Client,
                                             make_agent: MakeAgent) -> None:
    make_agent("cpe1")
    add_user(client)
    good = _Listener()
    try:
        with _silent() as slow_url:
            for k in range(3):  # created first: the dispatcher reached them first
                r = client.post(f"{API}/subscriptions", json={"callbackUri": f"{slow_url}{k}"})
                assert r.status_code == 201, r.text
            r = client.post(f"{API}/subscriptions", json={"callbackUri": good.url})
            assert r.status_code == 201, r.text
            sub = r.json()["id"]
            t0 = time.monotonic()
            op = wait_op(client, instantiate(client))
            assert op["operation_state"] == "COMPLETED", op
            wait_until(lambda: [b for b in good.bodies if b["operationState"] == "COMPLETED"],
                       2.5, "the COMPLETED notification at the answering subscriber")
            # Within the time of one silent POST's timeout (3 s): before, 9 s per event.
            assert good.at[-1] - t0 < 2.5
            states = [b["operationState"] for b in good.bodies]
            assert states == ["PROCESSING", "COMPLETED"], states  # in order
            assert {b["subscriptionId"] for b in good.bodies} == {sub}
            assert {b["vnfLcmOpOccId"] for b in good.bodies} == {op["id"]}
    finally:
        good.close()


def test_a_duplicate_subscription_is_the_existing_one(client: httpx.Client) -> None:
    """The same callbackUri and filter again: 303 See Other to the existing subscription,
    nothing created (ETSI GS NFV-SOL 013 §5.3); 20 identical ones were all created (probe
    of 2026-12-05). A different filter is another subscription."""
    body = {"callbackUri": "http://127.0.0.1:9/cb",
            "filter": {"operationStates": ["COMPLETED"]}}
    first = client.post(f"{API}/subscriptions", json=body)
    assert first.status_code == 201, first.text
    again = client.post(f"{API}/subscriptions", json=body)
    assert again.status_code == 303, again.text
    sid = first.json()["id"]
    assert again.headers["location"] == f"{API}/subscriptions/{sid}"
    assert client.get(again.headers["location"]).json()["id"] == sid
    assert len(client.get(f"{API}/subscriptions").json()) == 1
    other = client.post(f"{API}/subscriptions", json={"callbackUri": body["callbackUri"]})
    assert other.status_code == 201, other.text
    assert client.get(f"{API}/subscriptions/nope").status_code == 404


def test_subscriptions_are_bounded(client: httpx.Client) -> None:
    from netfate.db.repo.lcm import MAX_SUBSCRIPTIONS

    for k in range(MAX_SUBSCRIPTIONS):
        r = client.post(f"{API}/subscriptions", json={"callbackUri": f"http://127.0.0.1:9/{k}"})
        assert r.status_code == 201, r.text
    r = client.post(f"{API}/subscriptions", json={"callbackUri": "http://127.0.0.1:9/more"})
    assert r.status_code == 409 and "at most" in r.json()["detail"], r.text
    assert len(client.get(f"{API}/subscriptions").json()) == MAX_SUBSCRIPTIONS


def test_an_equivalent_subscription_is_a_duplicate_too(client: httpx.Client) -> None:
    """The same callback spelt otherwise (scheme and host case, port 09) or the same filter
    in another order was created again (probe of 2026-12-05)."""
    first = client.post(f"{API}/subscriptions", json={
        "callbackUri": "http://127.0.0.1:9/b",
        "filter": {"operationStates": ["COMPLETED", "FAILED"]}})
    assert first.status_code == 201, first.text
    for uri, states in (("HTTP://127.0.0.1:9/b", ["FAILED", "COMPLETED"]),
                        ("http://127.0.0.1:09/b", ["COMPLETED", "FAILED"])):
        r = client.post(f"{API}/subscriptions", json={
            "callbackUri": uri, "filter": {"operationStates": states}})
        assert r.status_code == 303, (uri, r.status_code, r.text)
    assert len(client.get(f"{API}/subscriptions").json()) == 1
