"""Starting RADIUS with the stack.

The orchestrator serves /api/v1/radius/* itself (routes_radius); FreeRADIUS is a process of
its own next to it. Both take the same settings: RadiusSettings.resolve(state_dir) fills in
the secrets kept (or first generated) in the orchestrator's state directory.

From the orchestrator (its lifespan)::

    from netfate.radius import service as radius
    async with radius.running(settings):      # settings: the orchestrator's Settings
        ...                                   # FreeRADIUS answers on 127.0.0.1:1812

or step by step (e.g. from the testbed, which records the PID)::

    fr = radius.start_freeradius(state_dir, api_url="http://127.0.0.1:8181")
    fr.pid ...; fr.stop()                      # or radius.stop_recorded(state_dir)

The portals use radius.portal_client(state_dir) (or RadiusClient(host, port, secret)).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netfate.radius.client import RadiusClient
from netfate.radius.server import FreeRadius, private_dir, stop_recorded
from netfate.radius.settings import RadiusSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from netfate.orchestrator.settings import Settings

__all__ = ["api_url", "pin_settings", "portal_client", "running", "settings_for",
           "start_freeradius", "stop_recorded"]


def settings_for(state_dir: Path, settings: RadiusSettings | None = None) -> RadiusSettings:
    """The stack's RADIUS settings: ``settings`` (default: the defaults) with the
    secrets kept in ``state_dir`` filled in, checked."""
    return (settings or RadiusSettings()).resolve(Path(state_dir))


def api_url(orchestrator: Settings) -> str:
    """The orchestrator's URL as FreeRADIUS on the same machine reaches it."""
    host = orchestrator.host
    if host in ("", "0.0.0.0", "::"):  # a wildcard: reach it on loopback
        host = "127.0.0.1"
    elif ":" in host and ipaddress.ip_address(host).version == 6:
        host = f"[{host}]"
    return f"http://{host}:{orchestrator.port}"


def start_freeradius(state_dir: Path, api_url: str, settings: RadiusSettings | None = None,
                     *, debug: bool = False, timeout: float = 15.0) -> FreeRadius:
    """Start FreeRADIUS from its private config in ``<state_dir>/fate-radius``, asking the
    orchestrator at ``api_url``; return once it answers Status-Server. Its PID is in .pid
    and in <state_dir>/fate-radius/freeradius.pid; stop with .stop() (or, from another
    process, stop_recorded(state_dir))."""
    fr = FreeRadius.from_settings(state_dir, settings_for(state_dir, settings), api_url,
                                  debug=debug)
    fr.start(timeout)
    return fr


@asynccontextmanager
async def running(orchestrator: Settings, settings: RadiusSettings | None = None,
                  *, debug: bool = False) -> AsyncIterator[FreeRadius]:
    """FreeRADIUS for the orchestrator with these settings, for as long as the block runs.
    FreeRADIUS may be up before the API is: it connects to it on the first login."""
    fr = await asyncio.to_thread(start_freeradius, orchestrator.state_dir, api_url(orchestrator),
                                 settings, debug=debug)
    try:
        yield fr
    finally:
        await asyncio.to_thread(fr.stop)


def pin_settings(app: FastAPI, settings: RadiusSettings) -> None:
    """Make the app's /radius endpoints use these settings (instead of resolving the
    orchestrator's radius_settings with its state directory on first use)."""
    app.state.radius_settings = settings


def portal_client(state_dir: Path, settings: RadiusSettings | None = None,
                  **kw: Any) -> RadiusClient:
    """A RADIUS client of the stack's FreeRADIUS, with its shared secret."""
    s = settings_for(state_dir, settings)
    return RadiusClient(s.host, s.port, s.secret, **kw)


def freeradius_dir(state_dir: Path) -> Path:
    return private_dir(Path(state_dir))
