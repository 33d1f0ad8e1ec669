"""The controller's side of the message bus, bridged to os-ken's threads.

os-ken runs on native threads (its default hub); nats-py is asyncio. Rather than mix the two
in one thread, the NATS client runs its own event loop in a thread of its own:

- bus -> controller: a desired state is parsed there and handed to a plain callback that must
  not block (the app puts it on a thread-safe queue and its own event loop picks it up, so
  OpenFlow events and desired-state changes are handled one at a time, in order, lock-free);
- controller -> bus: publish() schedules the send on the NATS loop and returns at once, so an
  OpenFlow handler never waits on the network.

On every (re)connect the bridge says hello, so the owner of desired state publishes it all
again: after any restart both sides re-sync fully (level-triggered).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import nats
from nats.aio.msg import Msg
from pydantic import BaseModel, ValidationError

from netfate.bus import subjects
from netfate.bus.messages import ControllerHello
from netfate.controller.model import SwitchState
from netfate.errors import DriverError

log = logging.getLogger("netfate.controller.bus")


class BusBridge:
    def __init__(
        self,
        url: str,
        on_desired: Callable[[SwitchState], None],
        nodes: Callable[[], list[str]] = list,
        name: str = "netfate-controller",
    ) -> None:
        self.url = url
        self.name = name
        self._on_desired = on_desired
        self._nodes = nodes
        self._loop: asyncio.AbstractEventLoop | None = None
        self._nc: Any = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    # -- called from any thread ----------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name="netfate-bus", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise DriverError(f"controller: no connection to NATS at {self.url} in {timeout:g}s")
        if self._error is not None:
            raise DriverError(f"controller: NATS at {self.url}: {self._error}")

    def publish(self, subject: str, msg: BaseModel) -> None:
        loop = self._loop
        if loop is None or self._nc is None:
            log.warning("not connected to NATS: dropped a message on %s", subject)
            return
        data = msg.model_dump_json().encode()
        fut = asyncio.run_coroutine_threadsafe(self._nc.publish(subject, data), loop)

        def done(f: Any) -> None:
            exc = None if f.cancelled() else f.exception()
            if exc is not None:
                log.warning("publish on %s failed: %s", subject, exc)

        fut.add_done_callback(done)

    def stop(self, timeout: float = 5.0) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the NATS thread -----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by start(); the thread must not die silently
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._nc = await nats.connect(
            self.url, name=self.name, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
            reconnected_cb=self._hello, connect_timeout=5,
        )
        await self._nc.subscribe(subjects.ALL_CONTROLLER_DESIRED, cb=self._on_msg)
        await self._hello()
        self._ready.set()
        await self._stop.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._nc.close(), 2)

    async def _hello(self) -> None:
        hello = ControllerHello(ts=time.time(), nodes=self._nodes())
        await self._nc.publish(subjects.CONTROLLER_HELLO, hello.model_dump_json().encode())

    async def _on_msg(self, msg: Msg) -> None:
        try:
            state = SwitchState.model_validate_json(msg.data)
        except ValidationError as exc:
            log.warning("ignored a bad desired state on %s: %s", msg.subject, exc)
            return
        parts = msg.subject.split(".")
        if len(parts) != 4 or parts[2] != state.node:
            log.warning("ignored desired state for node %s published on %s",
                        state.node, msg.subject)
            return
        self._on_desired(state)
