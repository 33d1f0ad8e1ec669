import asyncio
import json
from pathlib import Path
from typing import Any

from netfate.db import Database, repo
from netfate.db.session import sqlite_url
from netfate.orchestrator.hub import EventHub
from netfate.orchestrator.notify import dispatch, matches


async def callback_server(got: list[dict[str, Any]]) -> tuple[asyncio.Server, int]:
    """A subscriber's endpoint on loopback: each notification's body appended to `got`."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        got.append(json.loads(await reader.readexactly(length)))
        writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


def test_subscription_filters() -> None:
    op = {"operation": "INSTANTIATE", "state": "COMPLETED", "vnf_instance_id": "cpe1-u-fw"}
    assert matches({}, op)
    assert matches({"operationTypes": ["INSTANTIATE"]}, op)
    assert not matches({"operationTypes": ["MIGRATE"]}, op)
    assert matches({"operationStates": ["COMPLETED", "FAILED"], "vnfInstanceIds": ["cpe1-u-fw"]},
                   op)
    assert not matches({"vnfInstanceIds": ["other"]}, op)


def test_a_callback_uri_the_http_client_refuses_does_not_end_the_dispatcher(
        tmp_path: Path) -> None:
    """A subscription stored with a URI httpx refuses (InvalidURL is not an HTTPError: one
    stored before the API refused control characters) costs its own notifications only:
    the dispatcher goes on and notifies the next subscription."""
    db = Database.create(sqlite_url(tmp_path))
    got: list[dict[str, Any]] = []

    async def main() -> None:
        server, port = await callback_server(got)
        with db.session() as s:
            repo.add_subscription(s, "http://127.0.0.1:9/cb\n")
        with db.session() as s:
            repo.add_subscription(s, f"http://127.0.0.1:{port}/cb")
        hub = EventHub()
        task = asyncio.create_task(dispatch(hub, db, timeout=2))
        await asyncio.sleep(0.1)
        hub.publish("op", {"id": "op1", "operation": "INSTANTIATE", "state": "COMPLETED"})
        for _ in range(100):
            if got or task.done():
                break
            await asyncio.sleep(0.05)
        assert not task.done(), task.exception()
        task.cancel()
        server.close()

    asyncio.run(main())
    assert [n["vnfLcmOpOccId"] for n in got] == ["op1"]


def test_a_filter_stored_before_the_api_checked_them_matches_nothing_and_never_raises(
        ) -> None:
    """`{"operationStates": 5}` was accepted and then raised TypeError in the dispatcher
    for every operation, ending lifecycle notifications for every subscriber without a
    word (new-user probe, 2026-12-03). The API refuses it now (test_api_input); one stored
    before matches nothing. A misspelt key matched everything; a string matched substrings."""
    op = {"operation": "INSTANTIATE", "state": "FAILED", "vnf_instance_id": "cpe1-u-fw"}
    for bad in ({"operationStates": 5}, {"operationStates": "FAILED_TEMP"},
                {"operationState": ["COMPLETED"]}, {"vnfInstanceIds": {"cpe1-u-fw": 1}}):
        assert matches(bad, op) is False
    assert matches({"operationStates": []}, op)  # stored for "any" before


def test_a_bad_stored_filter_does_not_end_the_dispatcher(tmp_path: Path) -> None:
    db = Database.create(sqlite_url(tmp_path))
    got: list[dict[str, Any]] = []

    async def main() -> None:
        server, port = await callback_server(got)
        with db.session() as s:  # first: served before the good one, as in the probe
            repo.add_subscription(s, f"http://127.0.0.1:{port}/bad",
                                  filter={"operationStates": 5})
        with db.session() as s:
            repo.add_subscription(s, f"http://127.0.0.1:{port}/good")
        hub = EventHub()
        task = asyncio.create_task(dispatch(hub, db, timeout=2))
        await asyncio.sleep(0.1)
        for k in (1, 2):
            hub.publish("op", {"id": f"op{k}", "operation": "INSTANTIATE", "state": "FAILED"})
            await asyncio.sleep(0.05)
        for _ in range(100):
            if len(got) >= 2 or task.done():
                break
            await asyncio.sleep(0.05)
        assert not task.done(), task.exception()
        task.cancel()
        server.close()

    asyncio.run(main())
    assert sorted(n["vnfLcmOpOccId"] for n in got) == ["op1", "op2"]
