"""netfate orchestrator | agent: the long-running processes."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from netfate import naming, paths
from netfate.cli.common import (
    ascii_int,
    controller_targets,
    guarded,
    nats_servers,
    need_root,
)
from netfate.cli.common import settings as load

if TYPE_CHECKING:
    from fastapi import FastAPI

Opt = typer.Option

# Flags left out (None) take the NETFATE_* variable named in their help, else the default.


def orchestrator(
    host: Annotated[str | None, Opt(help="Address for the API [NETFATE_HOST; 127.0.0.1]")]
    = None,
    port: Annotated[int | None, Opt(help="Port for the API [NETFATE_PORT; 8181]",
                                    parser=ascii_int(1, 65535))] = None,
    state_dir: Annotated[Path | None, Opt(help="Database and embedded NATS live here "
                                               "[NETFATE_STATE_DIR; /var/lib/netfate]")]
    = None,
    db_url: Annotated[str | None, Opt(help="SQLAlchemy URL [NETFATE_DB_URL; SQLite in the "
                                           "state dir]")] = None,
    nats_url: Annotated[str | None, Opt(help="NATS URL, or a NATS cluster's member URLs "
                                             "separated by commas [NETFATE_NATS_URL; an "
                                             "embedded nats-server]",
                                        parser=nats_servers)] = None,
    nats_port: Annotated[int | None, Opt(help="Port for the embedded nats-server",
                                         parser=ascii_int(1, 65535))] = None,
    command_timeout: Annotated[float | None, Opt(help="Seconds an agent has to answer "
                                                      "[NETFATE_COMMAND_TIMEOUT; 15]")] = None,
    policy: Annotated[str | None, Opt(help="Placement policy [NETFATE_POLICY; netfate]")]
    = None,
    resolver: Annotated[str | None, Opt(help="Flavour resolver rule: nnf (native at the "
                                             "edge, container in the DC, VM last) or first "
                                             "(the NF's order) [NETFATE_RESOLVER; nnf]")]
    = None,
    radius: Annotated[bool | None, Opt(help="Start FreeRADIUS (private config, loopback) "
                                            "with the orchestrator [NETFATE_RADIUS; no]")]
    = None,
    user_idle_timeout: Annotated[int | None, Opt(help="Seconds without packets before a "
                                                      "user is idle, 0: never "
                                                      "[NETFATE_USER_IDLE_TIMEOUT; 60]")]
    = None,
    reauth_lifetime: Annotated[float | None, Opt(help="Seconds a session allows fast "
                                                      "re-authentication at another node "
                                                      "[NETFATE_REAUTH_LIFETIME; 3600]")]
    = None,
    reaction_policy: Annotated[str | None, Opt(help="Closed loop: the reaction policy for "
                                                    "NF notifications, e.g. "
                                                    "block-flood-sources; empty: off "
                                                    "[NETFATE_REACTION_POLICY; off]")] = None,
    probe_subnet: Annotated[str | None, Opt(help="The access subnet troubleshooting probes "
                                                 "take addresses in, from its top, and users' "
                                                 "devices are at CPEs whose access services "
                                                 "are in it; empty: none "
                                                 "[NETFATE_PROBE_SUBNET; 10.90.0.0/16]")]
    = None,
    probe_gateway: Annotated[str | None, Opt(help="The probes' default gateway "
                                                  "[NETFATE_PROBE_GATEWAY; 10.90.0.1]")]
    = None,
    replica_id: Annotated[str | None, Opt(help="Run as this replica of several (needs a "
                                               "PostgreSQL --db-url and --nats-url) "
                                               "[NETFATE_REPLICA_ID; the only one]")] = None,
) -> None:
    """Run the orchestrator: API, NFVI database, engine and coordinator."""
    import uvicorn

    from netfate.orchestrator.app import create_app

    settings = load(orchestrator={
        "host": host, "port": port, "state_dir": state_dir, "db_url": db_url,
        "nats_url": nats_url, "nats_port": nats_port or None,
        "command_timeout": command_timeout, "policy": policy, "resolver": resolver,
        "radius": radius, "user_idle_timeout": user_idle_timeout,
        "reauth_lifetime": reauth_lifetime, "reaction_policy": reaction_policy,
        "probe_subnet": probe_subnet, "probe_gateway": probe_gateway,
        "replica_id": replica_id}).orchestrator
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    def ready() -> FastAPI:
        # What would fail the start inside uvicorn's lifespan, with a traceback, is checked
        # here and ends the command with one line: the database URL, the state directory
        # (another orchestrator's, or not writable), the policy and resolver names.
        from netfate.db.session import check_url
        from netfate.orchestrator import state_lock

        check_url(settings.database_url)
        state_lock.probe(settings.state_dir)
        return create_app(settings)

    app = guarded(ready)
    from netfate.http_protocol import HeadTimeoutProtocol

    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning",
                http=HeadTimeoutProtocol)


def agent(
    node: Annotated[str, Opt(help="The node this agent runs")],
    nats_url: Annotated[str, Opt(help="NATS URL of the orchestrator's bus (or a cluster's "
                                      "member URLs, comma-separated)", parser=nats_servers)]
    = "nats://127.0.0.1:4222",
    role: Annotated[str, Opt(help="cpe, pe or dc")] = "cpe",
    uplink: Annotated[str | None, Opt(help="The LSI's uplink port")] = None,
    telemetry_interval: Annotated[float, Opt(help="Seconds between telemetry reports")] = 2.0,
    mtu: Annotated[int, Opt(help="MTU of NF ports (1280-9000, as a topology's)",
                            parser=ascii_int(1280, 9000))] = 9000,
    mem_mb: Annotated[int | None, Opt(help="Declared memory for NFs (emulated nodes sharing "
                                          "a host); default: the host's")] = None,
    cpus: Annotated[float, Opt(help="Declared CPUs for NFs, with --mem-mb")] = 1.0,
    controller_managed: Annotated[bool, Opt(help="An SDN controller owns the switch's "
                                                 "flows (else NF ports get drop rules "
                                                 "from the agent)")] = True,
    controller: Annotated[str | None, Opt(help="OpenFlow controllers of the node's switch: "
                                               "tcp:HOST:PORT or ssl:HOST:PORT, up to 8, "
                                               "comma-separated (they share it with "
                                               "OpenFlow roles); default: the switch's own",
                                          parser=controller_targets)] = None,
    script_timeout: Annotated[float | None, Opt(help="Seconds an NF lifecycle script may "
                                                     "run [NETFATE_SCRIPT_TIMEOUT; 30]")]
    = None,
    metrics_port: Annotated[int, Opt(min=0, max=65535, help="Serve Prometheus metrics at "
                                     "http://127.0.0.1:PORT/metrics (0: off)")] = 0,
    flavours: Annotated[str | None, Opt(help="Comma-separated flavours this node may host, "
                                            "e.g. native,container,vm; it advertises those "
                                            "whose driver is registered and whose tools are "
                                            "present (default: all such)")] = None,
) -> None:
    """Run the agent of one NFVI node (CPE, PE or DC)."""
    need_root()
    settings = load(compute={"script_timeout": script_timeout})
    from netfate.agent.service import Agent
    from netfate.drivers.ovs import OvsServer

    naming.check_node_name(node)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from netfate.agent.telemetry import Budget

    budget = Budget(mem_mb, cpus) if mem_mb else None
    hosted = _hostable(flavours)
    a = Agent(node, role, nats_url, paths.run_dir(), OvsServer(paths.ovs_dir()),
              uplink=uplink, telemetry_interval=telemetry_interval, mtu=mtu, budget=budget,
              controller_managed=controller_managed, controller=controller,
              script_timeout=settings.compute.script_timeout, flavours=hosted,
              nf_pool_size=settings.compute.nf_pool_size)
    if metrics_port:
        from netfate.metrics import agent as agent_metrics

        agent_metrics.start(a, metrics_port)

    import faulthandler
    import os

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # stacks on demand, for debugging

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, a.stop)
        await a.run()
        logging.getLogger("netfate.agent").info("agent of %s stopped", node)
        logging.shutdown()
        # Everything that matters is closed (bus, OVSDB, OpenFlow); a worker thread blocked
        # in a driver call would otherwise hold up interpreter exit. The agent's state is in
        # the kernel, OVS and its run dir, which it is built to find again after a kill -9.
        os._exit(0)

    asyncio.run(main())


def _hostable(flavours: str | None) -> list[str]:
    """The flavours to host: of those asked for (default: every registered one), those whose
    driver is registered and whose tools are present. BadParameter naming why none is."""
    from netfate.drivers import capabilities, registry
    from netfate.flavours import check_flavour

    asked = registry.available() if flavours is None else [
        f.strip() for f in flavours.split(",") if f.strip()]
    try:
        for f in asked:
            check_flavour(f)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--flavours") from None
    ok, why = capabilities.hostable(asked)
    for reason in why:
        logging.getLogger("netfate.agent").warning("not hosting flavour %s", reason)
    if not ok:
        raise typer.BadParameter(f"no flavour can be hosted here ({'; '.join(why)})",
                                 param_hint="--flavours")
    return ok


def controller(
    nats_url: Annotated[str | None, Opt(help="NATS URL of the orchestrator's bus (desired "
                                             "switch states arrive there; or a cluster's "
                                             "member URLs, comma-separated)",
                                        parser=nats_servers)]
    = "nats://127.0.0.1:4222",
    port: Annotated[int, Opt(help="OpenFlow port the switches connect to",
                             parser=ascii_int(1, 65535))] = 6653,
    host: Annotated[str, Opt(help="Address to listen on")] = "127.0.0.1",
    purge_foreign: Annotated[bool, Opt(help="Also remove flows the controller did not "
                                            "install")] = True,
    metrics_port: Annotated[int, Opt(min=0, max=65535, help="Serve Prometheus metrics at "
                                     "http://127.0.0.1:PORT/metrics (0: off)")] = 0,
    controller_id: Annotated[str | None, Opt(help="Run as one of several controllers "
                                                  "sharing the switches with OpenFlow roles "
                                                  "(a-z, 0-9, '-'); default: the only one",
                                             parser=_controller_id)] = None,
) -> None:
    """Run the SDN controller (os-ken, OpenFlow 1.3) of every node's switch."""
    from netfate.controller.run import run_controller

    load()  # nothing of the controller's is a setting yet; the run dir is

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("os_ken", "os_ken.controller.controller", "os_ken.base.app_manager"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    run_controller(nats_url, port, listen_host=host, purge_foreign=purge_foreign,
                   metrics_port=metrics_port, controller_id=controller_id)


def _controller_id(value: str) -> str:
    from netfate.controller.roles import check_id
    try:
        return check_id(str(value))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
