"""A NATS cluster of nats-server members (issue #15): server lists parsed strictly, the mesh
formed, a member killed and brought back, nothing left running; clients carry on through the
other members."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest

from netfate.bus.cluster import NatsCluster
from netfate.bus.urls import servers
from netfate.proc import alive


def test_server_lists() -> None:
    assert servers("nats://127.0.0.1:4222") == ["nats://127.0.0.1:4222"]
    assert servers(" nats://a:1 , tls://[::1]:4223") == ["nats://a:1", "tls://[::1]:4223"]


@pytest.mark.parametrize("bad, says", [
    ("", "no NATS server"),
    ("http://x:4222", "not a NATS server URL"),
    ("nats://x:4222/path", "not a NATS server URL"),
    ("nats://user:pw@x:4222", "not a NATS server URL"),
    ("nats://x:99999", "out of range"),
    ("nats://x:0", "out of range"),
    ("nats://١٢٧.0.0.1:4222", "not a NATS server URL"),
    ("nats://x:٤٢٢٢", "not a NATS server URL"),
    ("nats://a:1,nats://a:1", "twice"),
    (",".join(f"nats://h{i}:1" for i in range(17)), "at most 16"),
    ("nats://" + "a" * 3000, "longer than"),
])
def test_bad_server_lists_are_refused(bad: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        servers(bad)


def test_cluster_size_is_bounded(tmp_path: Path) -> None:
    for size in (0, 10):
        with pytest.raises(ValueError, match="1-9"):
            NatsCluster(tmp_path, size)


@pytest.mark.slow
def test_members_mesh_and_clients_carry_on_through_the_others(tmp_path: Path) -> None:
    c = NatsCluster(tmp_path, 3)
    c.start()
    pids = [c.pid(k) for k in range(3)]
    try:
        assert all(p is not None for p in pids)
        assert c.routed_to(0) == {"netfate-1", "netfate-2"}
        asyncio.run(_carry_on(c))
        c.restart(1)
        assert c.routed_to(1) == {"netfate-0", "netfate-2"}
    finally:
        c.stop()
    assert not any(p is not None and alive(p) for p in [*pids, c.pid(1)])


async def _carry_on(c: NatsCluster) -> None:
    """A responder on member 1 only at first; a requester on member 0 only. Member 1 dies:
    the responder moves to member 2 (the list it was given), and requests are answered."""
    urls = servers(c.client_urls)
    responder = await nats.connect([urls[1], urls[2]], dont_randomize=True,
                                   reconnect_time_wait=0.2, max_reconnect_attempts=-1)
    requester = await nats.connect([urls[0]], dont_randomize=True)
    try:
        async def answer(msg: nats.aio.msg.Msg) -> None:
            await msg.respond(b"pong:" + msg.data)

        await responder.subscribe("fate.test.ping", cb=answer)
        await responder.flush()
        # The subscription reaches member 0 over the route a moment later.
        assert (await _ask_until(requester, b"1")) == b"pong:1"
        c.kill(1)
        assert (await _ask_until(requester, b"2")) == b"pong:2"
    finally:
        await responder.close()
        await requester.close()


async def _ask_until(nc: nats.aio.client.Client, data: bytes) -> bytes | None:
    """The answer, asking again for up to ~10 s while no responder is reachable (the
    responder reconnecting, or its interest still on its way over the route)."""
    for _ in range(100):
        try:
            return bytes((await nc.request("fate.test.ping", data, timeout=1)).data)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            await asyncio.sleep(0.1)
    return None


# A host that is no address (999.1.1.1, a dotted-quad short of an octet, an "IPv6" of only
# colons, empty or hyphen-edged DNS labels) was accepted and only failed at connect time.
@pytest.mark.parametrize("bad", [
    "nats://999.1.1.1:4222", "nats://1.2.3", "nats://01.2.3.4", "nats://[::::::::::]",
    "nats://[1.2.3.4]", "nats://a..b", "nats://a-.b", "nats://-a.b", "nats://a.-b",
    "nats://" + "a" * 64 + ".example", "nats://h.123",
])
def test_a_host_that_is_no_address_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="host"):
        servers(bad)


def test_the_same_server_written_two_ways_is_one_server() -> None:
    for spec in ("nats://h:4222,nats://h", "nats://H,nats://h", "nats://[::1],nats://[0::1]"):
        with pytest.raises(ValueError, match="twice"):
            servers(spec)
    assert servers("nats://[::1]:4222,nats://10.0.0.1,nats://a-b.example") == [
        "nats://[::1]:4222", "nats://10.0.0.1", "nats://a-b.example"]
