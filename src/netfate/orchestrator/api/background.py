"""Lifecycle operations the API starts and lets run after its 202."""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

from netfate.orchestrator.coordinator import Coordinator

log = logging.getLogger("netfate.api")


def run_op(c: Coordinator, op_id: str, work: Coroutine[Any, Any, bool],
           owner: str | None) -> None:
    """Run an operation in the background, as one of its NF owner's plans (see
    Coordinator.as_owner). Whatever escapes it (the instance deleted under it, a database
    error) ends the operation FAILED rather than leaving it PROCESSING."""

    async def guarded() -> None:
        try:
            await c.as_owner(owner, work)
        except Exception as exc:
            log.exception("operation %s failed", op_id)
            try:
                await c.finish_failed(op_id, "operation failed", exc, rolled_back=False)
            except Exception:  # already final, or the database is gone
                log.exception("operation %s: could not record the failure", op_id)

    c.spawn(guarded())
