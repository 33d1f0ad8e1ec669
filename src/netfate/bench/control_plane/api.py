"""The bench's client of the orchestrator's API: httpx's async client (a keep-alive pool of
``size`` connections; a request beyond them waits for one) and the operations' end states,
followed on the SSE stream ``GET /events`` with the API as the fallback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import httpx

from netfate.bench.control_plane.params import DONE_STATES

# uvicorn closes a keep-alive connection idle for 5 s: don't reuse one idle that long.
KEEPALIVE_S = 4.0
ERRORS = (httpx.HTTPError, OSError, ValueError)  # what a request may raise, transport or body


class Api:
    """JSON requests to the API at ``base`` (http://host:port), or spread round robin over
    several replicas' APIs: a replica that does not answer (killed) is skipped for
    ``DOWN_S`` s and the request goes to the next one, as behind a load balancer."""

    DOWN_S = 5.0

    def __init__(self, base: str | list[str], size: int, auth: httpx.Auth | None = None
                 ) -> None:
        bases = [base] if isinstance(base, str) else list(base)
        self.clients = [httpx.AsyncClient(
            base_url=b, headers={"Content-Type": "application/json"}, auth=auth,
            limits=httpx.Limits(max_connections=size, max_keepalive_connections=size,
                                keepalive_expiry=KEEPALIVE_S)) for b in bases]
        self.client = self.clients[0]
        self._next = 0
        self._down: dict[int, float] = {}
        self.failovers = 0
        # Requests beyond the pool's connections wait here, not in httpcore's pool: its
        # queue costs O(waiting x connections) per request, which at hundreds of events a
        # second made the generator, not the orchestrator, the bottleneck.
        self._gate = asyncio.Semaphore(size * len(bases))

    def _order(self) -> list[int]:
        n = len(self.clients)
        k, self._next = self._next, (self._next + 1) % n
        now = time.monotonic()
        order = [(k + j) % n for j in range(n)]
        return [j for j in order if self._down.get(j, 0) <= now] or order

    async def request(self, method: str, path: str, body: Any = None,
                      timeout: float = 60.0) -> tuple[int, Any]:
        """(status, decoded JSON body or None). ``timeout`` s for the exchange; waiting for
        a free connection of the pool does not count. httpx.HTTPError on transport errors
        (httpx.TimeoutException on the timeout), ValueError on a body that is not JSON."""
        content = None if body is None else json.dumps(body).encode()
        async with self._gate:
            order = self._order()
            for i, k in enumerate(order):
                try:
                    r = await self.clients[k].request(
                        method, path, content=content,
                        timeout=httpx.Timeout(timeout, pool=None))
                    break
                except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
                    # Refused or cut: nothing was admitted there (a cut request may have
                    # been; the user's next event repairs either way).
                    self._down[k] = time.monotonic() + self.DOWN_S
                    if i == len(order) - 1:
                        raise
                    self.failovers += 1
        return r.status_code, (r.json() if r.content else None)

    async def close(self) -> None:
        for c in self.clients:
            await c.aclose()


class OpWatch:
    """Lifecycle operations' end states, by op id: live from the SSE stream, which a slow
    reader can miss events of (the hub drops them rather than grow), with the API as the
    fallback for an operation the stream has not reported after a while."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.done: dict[str, tuple[float, str]] = {}
        self.waiters: dict[str, asyncio.Future[tuple[float, str]]] = {}
        self.events = 0
        self.polls = 0
        self.by_sse = 0
        self.by_poll = 0
        self.connected = asyncio.Event()
        self._since: dict[str, float] = {}

    def saw(self, op_id: str, state: str, t: float) -> None:
        if (state not in DONE_STATES and state != "ENDED") or op_id in self.done:
            return
        self.done[op_id] = (t, state)
        self._since.pop(op_id, None)
        fut = self.waiters.pop(op_id, None)
        if fut is not None and not fut.done():
            fut.set_result((t, state))

    async def wait(self, op_id: str, timeout: float) -> tuple[float, str]:
        """(time it ended as seen here, final state or "ENDED" when only the poller saw it
        end; the exact time and state come from the records at the end of the run).
        TimeoutError after ``timeout`` s."""
        if op_id in self.done:
            return self.done[op_id]
        fut = self.waiters.get(op_id)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self.waiters[op_id] = fut
            self._since[op_id] = time.monotonic()
        return await asyncio.wait_for(asyncio.shield(fut), timeout)

    async def poll(self, quiet: float = 3.0, every: float = 1.0) -> None:
        """Operations waited on for `quiet` s that the SSE stream has not reported: one
        request a second lists the operations still PROCESSING; a waited-on one that is not
        among them has ended. (Per-operation polling would load the orchestrator.)"""
        while True:
            await asyncio.sleep(every)
            asked = time.monotonic()
            stale = [op for op, t in self._since.items()
                     if op in self.waiters and asked - t >= quiet]
            if not stale:
                continue
            self.polls += 1
            with contextlib.suppress(*ERRORS):
                status, body = await self.api.request(
                    "GET", "/api/v1/vnf_lcm_op_occs?state=PROCESSING", timeout=30)
                if status != 200:
                    continue
                running = {o["id"] for o in body}
                now = time.time()
                for op in stale:
                    if op not in running and op in self.waiters:
                        self.by_poll += 1
                        self.saw(op, "ENDED", now)

    async def follow(self, client: httpx.AsyncClient | None = None) -> None:
        """Read the SSE stream (of ``client``, default the first API's) until cancelled.
        httpx.HTTPStatusError if it is refused."""
        async with (client or self.api.client).stream(
                "GET", "/api/v1/events", headers={"Accept": "text/event-stream"},
                timeout=httpx.Timeout(10.0, read=None)) as r:
            r.raise_for_status()
            self.connected.set()
            kind = ""
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "op":
                    now = time.time()
                    self.events += 1
                    d = json.loads(line[6:])["data"]
                    if d["state"] in DONE_STATES and d["id"] not in self.done:
                        self.by_sse += 1
                    self.saw(d["id"], d["state"], now)
