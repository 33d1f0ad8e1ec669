"""The orchestrator's FastAPI application."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Response

from netfate import __version__
from netfate.metrics import orchestrator as metrics
from netfate.orchestrator.api import (
    auth,
    head,
    problems,
    relative_location,
    routes_checkpoints,
    routes_instances,
    routes_nodes_users,
    routes_notifications,
    routes_packages,
    routes_radius,
    routes_troubleshoot,
    routes_ts_rules,
    unique_keys,
)
from netfate.orchestrator.api.deps import known_query, no_stray_body
from netfate.orchestrator.service import Orchestrator
from netfate.orchestrator.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    orch = Orchestrator(settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await orch.start()
        except BaseException:  # what it started goes (nats-server, FreeRADIUS, the lock)
            await orch.stop()
            raise
        counting = asyncio.create_task(metrics.follow(orch.hub))
        try:
            yield
        finally:
            counting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await counting
            await orch.stop()

    app = FastAPI(title="NetFATE orchestrator", version=__version__, lifespan=lifespan,
                  description="Network functions at the edge: nodes, users, NF catalogue, "
                              "NF instances and their lifecycle operations, notifications.")
    app.state.orchestrator = orch
    problems.install(app)
    for r in (routes_nodes_users, routes_packages, routes_instances, routes_notifications,
              routes_radius, routes_ts_rules, routes_checkpoints, routes_troubleshoot):
        app.include_router(r.router, prefix="/api/v1",
                           dependencies=[Depends(no_stray_body), Depends(known_query)])

    # The operator's web UI (netfate.orchestrator.ui), its assets from the package.
    from netfate.orchestrator.ui import actions, pages

    app.include_router(actions.router)
    app.include_router(pages.router)
    app.mount("/ui/static", pages.static_app(), name="ui-static")

    @app.get("/api/v1/health", responses={503: {"description": "The bus is disconnected"}},
             dependencies=[Depends(known_query)])
    def health(response: Response) -> dict[str, object]:
        """ok, the version, the bus's URL and whether the orchestrator is connected to it:
        503 when it is not (agents' messages and commands cannot flow; it reconnects by
        itself when the bus is back)."""
        bus = orch.nc is not None and bool(orch.nc.is_connected)
        if not bus:
            response.status_code = 503
        return {"ok": bus, "version": __version__, "nats": orch.nats_url,
                "bus_connected": bus}

    @app.get("/api/v1/cluster", dependencies=[Depends(known_query)])
    def cluster() -> dict[str, object]:
        """This replica, the live ones and the leader (issue #15); the only orchestrator
        reports itself as its own leader, replica null."""
        if orch.replica is None:
            return {"replica": None, "leader": None, "is_leader": True, "members": [],
                    "apis": {}, "leader_since": None}
        return orch.replica.view()

    metrics.install(app, orch)  # GET /metrics (Prometheus), at the root, outside /api/v1
    app.add_middleware(head.HeadAsGet)  # innermost: HEAD is a GET to every route
    app.add_middleware(unique_keys.UniqueKeys)  # inside BodyLimit, which bounds what it reads
    app.add_middleware(problems.BodyLimit, limit=orch.settings.max_body_bytes,
                       small=orch.settings.max_json_bytes,
                       large=frozenset({"/api/v1/vnf_packages"}))
    # Outermost: nothing is read or run for a request without the operator's token/session.
    app.add_middleware(auth.OperatorAuth, token=lambda: orch.api_token)
    # Around everything: no Location built from the request's Host goes out absolute.
    app.add_middleware(relative_location.RelativeLocation)
    return app
