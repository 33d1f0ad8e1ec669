"""netfate access serve | cleanup: a CPE's DHCP, DNS and captive portal."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from netfate import paths
from netfate.cli.common import (
    ascii_int,
    checked,
    console,
    emit_json,
    given_path,
    guarded,
    need_root,
)
from netfate.cli.common import settings as load
from netfate.counters import LoopFailures

Opt = typer.Option

app = typer.Typer(help="A CPE's access services: DHCP, DNS and the captive portal.",
                  no_args_is_help=True)
# The services veth's MTU: the testbed's links' (testbed.topology.Topology.mtu, which the
# testbed passes as --mtu), whose bounds these are; pydantic checks them there.
MTU_MIN, MTU_MAX = 1280, 9000


def _default_state_dir(node: str) -> Path:
    return paths.run_dir() / "access" / node


def _state_dir(given: Path | None, node: str) -> Path:
    """The state dir (given or the node's default), checked before root or anything else
    is needed: one line naming it if it is a file, a fifo, or holds one."""
    from netfate.access.services import check_state_dir

    state_dir = given or _default_state_dir(node)
    guarded(lambda: check_state_dir(state_dir))
    return state_dir


@app.command()
def serve(
    node: Annotated[str, Opt(help="The CPE node", callback=checked("name"))],
    index: Annotated[int | None, Opt(help="The CPE's 0-based index among the topology's "
                                          "CPEs: derives all addresses",
                                     parser=ascii_int(0, 65535))] = None,
    subnet: Annotated[str, Opt(help="The testbed subnet (with --index)",
                               callback=checked("ipv4-prefix"))] = "10.90.0.0/16",
    gateway: Annotated[str, Opt(help="The clients' router (with --index)",
                                callback=checked("station-ipv4"))] = "10.90.0.1",
    services_ip: Annotated[str | None, Opt(help="Explicit: the services address",
                                           callback=checked("station-ipv4"))] = None,
    pool_start: Annotated[str | None, Opt(help="Explicit: first dynamic address",
                                          callback=checked("station-ipv4"))] = None,
    pool_end: Annotated[str | None, Opt(help="Explicit: last dynamic address",
                                        callback=checked("station-ipv4"))] = None,
    prefixlen: Annotated[int | None, Opt(help="Explicit: the clients' prefix length",
                                         parser=ascii_int(1, 30))] = None,
    router: Annotated[str | None, Opt(help="Explicit: the clients' router",
                                      callback=checked("station-ipv4"))] = None,
    framed_pool: Annotated[str | None, Opt(help="RADIUS Framed-IP pool the DHCP pool must "
                                                "avoid (default: NETFATE_RADIUS_POOL or "
                                                "10.90.100.0/22)",
                                           callback=checked("ipv4-prefix"))] = None,
    bridge: Annotated[str | None, Opt(help="OVS bridge to attach the services port to")]
    = None,
    state_dir: Annotated[Path | None, Opt(help="dnsmasq's files (default "
                                               "/run/netfate/access/<node>)",
                                          parser=given_path)] = None,
    api_url: Annotated[str, Opt(help="The orchestrator's API")] = "http://127.0.0.1:8181",
    radius_state_dir: Annotated[Path | None, Opt(help="The orchestrator's state dir, with "
                                                      "the RADIUS secret and the API token "
                                                      "(default "
                                                      "/run/netfate/orchestrator)",
                                                 parser=given_path)] = None,
    portal_port: Annotated[int, Opt(help="The portal's port in the services namespace",
                                    parser=ascii_int(1, 65535))] = 80,
    internet_address: Annotated[str, Opt(help="What inet.netfate resolves to",
                                         callback=checked("station-ipv4"))]
    = "10.255.0.1",
    mtu: Annotated[int | None, Opt(help=f"MTU of the services veth ({MTU_MIN}-{MTU_MAX}, "
                                        "as the testbed's links)",
                                   parser=ascii_int(MTU_MIN, MTU_MAX))] = None,
    tls_cert: Annotated[Path | None, Opt(help="The portal's TLS certificate (PEM): serves "
                                              "the captive portal API over https, announced "
                                              "in DHCP option 114 (default "
                                              "NETFATE_ACCESS_TLS_CERT; none: no API)")]
    = None,
    tls_key: Annotated[Path | None, Opt(help="Its key (PEM, unencrypted; default "
                                             "NETFATE_ACCESS_TLS_KEY)")] = None,
    local_record: Annotated[list[str] | None, Opt(help="A local DNS record name=ipv4, "
                                                       "answered for real before login too "
                                                       "(repeat; added to "
                                                       "NETFATE_ACCESS_LOCAL_RECORDS)")]
    = None,
) -> None:
    """Run a CPE's access services until SIGTERM/SIGINT, then remove them."""
    conf = load(radius={"pool": framed_pool},
                access={"tls_cert": tls_cert, "tls_key": tls_key})
    services_dir = _state_dir(state_dir, node)
    need_root()
    from netfate.access import addressing
    from netfate.access.services import AccessServices
    from netfate.errors import InvalidInput
    from netfate.radius.service import portal_client

    radius, access = conf.radius, conf.access
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    explicit = [services_ip, pool_start, pool_end, prefixlen, router]

    def build() -> AccessServices:
        pool = radius.pool
        if index is not None:
            if any(v is not None for v in explicit):
                raise InvalidInput("give either --index or the explicit addresses, not both")
            cpe = addressing.for_index(subnet, gateway, node, index, framed_pool=pool)
        elif services_ip and pool_start and pool_end and prefixlen and router:
            cpe = addressing.cpe_access(node, services_ip, pool_start, pool_end, prefixlen,
                                        router, framed_pool=pool)
        else:
            raise InvalidInput("give --index, or all of --services-ip, --pool-start, "
                               "--pool-end, --prefixlen and --router")
        from netfate.access.local_zone import parse_records
        from netfate.api_auth import BearerAuth

        if (access.tls_cert is None) != (access.tls_key is None):
            raise InvalidInput("give both --tls-cert and --tls-key (or neither)")
        tls = ((access.tls_cert, access.tls_key)
               if access.tls_cert is not None and access.tls_key is not None else None)
        records = parse_records(",".join([access.local_records, *(local_record or [])]))
        if tls is not None:
            from netfate.access.tls import server_context

            server_context(*tls)  # before anything reads or makes state: a clear error
        orch_state = radius_state_dir or paths.run_dir() / "orchestrator"
        return AccessServices(
            cpe, bridge, services_dir,
            portal_client(orch_state, radius),
            api_url,
            portal_port=portal_port, internet_address=internet_address, mtu=mtu,
            api_auth=BearerAuth(state_dir=orch_state), local_records=records, tls=tls,
        )

    svc = guarded(build)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    guarded(svc.up)
    c = svc.cpe
    console.print(f"access services of {c.node}: {c.services_ip} ({c.services_mac}) in "
                  f"{svc.netns}, pool {c.pool_start}-{c.pool_end}, portal port {portal_port}"
                  + (f", captive portal API https port {svc.https_port}" if svc.tls else ""))
    sync_failures = LoopFailures("access-sync", logging.getLogger("netfate.access"))
    try:
        while not stop.wait(1.0):
            if not svc.dnsmasq.running():
                console.print(f"[red]error:[/] dnsmasq died:\n{svc.dnsmasq.log_tail()}")
                raise typer.Exit(1)
            try:
                svc.sync_bindings()
                sync_failures.ok()
            except Exception as exc:  # the orchestrator may be restarting: logged, retried
                sync_failures.failed(f"syncing the DHCP bindings of {c.node}", exc)
    finally:
        svc.down()


@app.command()
def cleanup(
    node: Annotated[str, Opt(help="The CPE node", callback=checked("name"))],
    state_dir: Annotated[Path | None, Opt(help="As given to serve", parser=given_path)]
    = None,
    json_out: Annotated[bool, Opt("--json", help="Print what was removed as JSON")] = False,
) -> None:
    """Remove what a `serve` that was killed left behind: dnsmasq, veth, namespace."""
    load()
    services_dir = _state_dir(state_dir, node)
    need_root()
    from netfate.access.services import cleanup as do_cleanup

    removed = guarded(lambda: do_cleanup(node, services_dir))
    if json_out:
        emit_json(removed)
    else:
        console.print(f"removed: {removed}")
