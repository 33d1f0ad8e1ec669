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
from pydantic import BaseModel

from netfate.bus import subjects
from netfate.bus.messages import ControllerAlive, ControllerHello
from netfate.bus.urls import servers
from netfate.controller.model import SwitchState
from netfate.controller.salvage import salvage
from netfate.counters import ENTRIES_SKIPPED, LOOP_FAILURES, REGISTRY
from netfate.errors import DriverError

log = logging.getLogger("netfate.controller.bus")


class BusBridge:
    def __init__(
        self,
        url: str,
        on_desired: Callable[[SwitchState], None],
        nodes: Callable[[], list[str]] = list,
        name: str = "netfate-controller",
        on_alive: Callable[[ControllerAlive], None] | None = None,
    ) -> None:
        self.url = url
        self._on_alive = on_alive
        self.name = name
        self._on_desired = on_desired
        self._nodes = nodes
        self._loop: asyncio.AbstractEventLoop | None = None
        self._nc: Any = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._task: asyncio.Task[Any] | None = None
        self._last_error = ""
        self._thread: threading.Thread | None = None

    # -- called from any thread ----------------------------------------------------------------
    def start(self, timeout: float | None = 10.0) -> None:
        """Connect in the background. With a timeout, wait that long for the connection and
        raise if it is not there; with None, return at once (the bridge keeps trying, and the
        controller leaves switches alone until desired states arrive)."""
        self._thread = threading.Thread(target=self._run, name="netfate-bus", daemon=True)
        self._thread.start()
        if timeout is None:
            return
        if not self._ready.wait(timeout):
            self.stop()
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
                REGISTRY.inc(LOOP_FAILURES, loop="controller-bus")
                log.warning("publish on %s failed: %s", subject, exc)

        fut.add_done_callback(done)

    def stop(self, timeout: float = 5.0) -> None:
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                loop.call_soon_threadsafe(task.cancel)
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the NATS thread -----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except asyncio.CancelledError:
            pass  # stop()
        except BaseException as exc:  # surfaced by start(); the thread must not die silently
            REGISTRY.inc(LOOP_FAILURES, loop="controller-bus")
            self._error = exc
            log.error("NATS bridge ended: %s", exc)
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        try:
            # Retries forever, the first connection included: a controller started before
            # the bus waits for it rather than dying.
            self._nc = await nats.connect(
                servers(self.url), name=self.name, max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                reconnected_cb=self._hello, error_cb=self._on_error, connect_timeout=2,
            )
            await self._nc.subscribe(subjects.ALL_CONTROLLER_DESIRED, cb=self._on_msg)
            if self._on_alive is not None:
                await self._nc.subscribe(subjects.CONTROLLER_ALIVE, cb=self._alive)
            # Ready means subscribed at the server: unflushed, a state published right after
            # start() could reach the server before the subscription and be lost.
            await self._nc.flush()
            await self._hello()
            log.info("connected to NATS at %s", self.url)
            self._last_error = ""
            self._ready.set()
            await asyncio.Event().wait()  # until stop() cancels this task
        finally:
            if self._nc is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._nc.close(), 2)

    async def _on_error(self, exc: Exception) -> None:
        REGISTRY.inc(LOOP_FAILURES, loop="controller-bus")
        text = str(exc) or type(exc).__name__
        if text != self._last_error:  # while the bus is down, every retry fails the same way
            log.warning("NATS: %s", text)
        self._last_error = text

    async def _hello(self) -> None:
        hello = ControllerHello(ts=time.time(), nodes=self._nodes())
        await self._nc.publish(subjects.CONTROLLER_HELLO, hello.model_dump_json().encode())

    async def _alive(self, msg: Msg) -> None:
        if len(msg.data) > 4096 or self._on_alive is None:
            return
        try:
            alive = ControllerAlive.model_validate_json(msg.data)
        except ValueError:
            log.warning("ignored a bad controller heartbeat on %s", msg.subject)
            return
        self._on_alive(alive)

    async def _on_msg(self, msg: Msg) -> None:
        state, left_out = salvage(msg.data)
        if state is None:
            REGISTRY.inc(LOOP_FAILURES, loop="controller-bus")
            log.warning("ignored a bad desired state on %s: %s", msg.subject, left_out)
            return
        if left_out:  # one bad entry costs that entry, never the switch's new state
            REGISTRY.inc(ENTRIES_SKIPPED, len(left_out), where="controller-bus",
                         node=state.node)
            log.warning("desired state of %s: left out %s", state.node, left_out)
        parts = msg.subject.split(".")
        if len(parts) != 4 or parts[2] != state.node:
            REGISTRY.inc(LOOP_FAILURES, loop="controller-bus")
            log.warning("ignored desired state for node %s published on %s",
                        state.node, msg.subject)
            return
        self._on_desired(state)
