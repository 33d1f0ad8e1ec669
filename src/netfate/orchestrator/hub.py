"""In-process fan-out of events to server-sent-event subscribers (the UI to come)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any


class EventHub:
    def __init__(self, backlog: int = 256) -> None:
        self._subs: set[asyncio.Queue[dict[str, Any]]] = set()
        self.backlog = backlog

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        event = {"event": kind, "ts": time.time(), "data": data}
        for q in list(self._subs):
            if q.qsize() < self.backlog:
                q.put_nowait(event)  # a slow reader loses events rather than memory

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._subs.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        self._subs.discard(q)

    @staticmethod
    def format(event: dict[str, Any]) -> str:
        return f"event: {event['event']}\ndata: {json.dumps(event, default=str)}\n\n"
