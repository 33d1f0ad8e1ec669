"""Start the controller: os-ken listening for switches on loopback, the bus bridge to NATS."""

from __future__ import annotations

import logging


def run_controller(
    nats_url: str | None,
    listen_port: int,
    listen_host: str = "127.0.0.1",
    purge_foreign: bool = False,
    metrics_port: int = 0,
    controller_id: str | None = None,
) -> None:
    """Run until the process is stopped. Blocks.

    nats_url None runs without the bus (no desired state arrives: switches are left alone),
    which is only useful to check that switches connect. purge_foreign also removes flows
    that carry no NetFATE cookie (written by hand, or by an older version): use it once
    nothing else programs the switches. metrics_port (not 0) serves Prometheus metrics
    on 127.0.0.1. controller_id (roles.check_id) runs this controller as one of several
    sharing the switches with OpenFlow roles (controller/roles.py); None: the only one.
    (TS rules a node kept locally carry the pipeline's
    cookie, so the controller replaces them with its desired state either way.)
    """
    # os-ken wants its app manager imported before its controller module (circular import),
    # and its options parsed before the controller module reads them.
    import os_ken.base.app_manager as app_manager
    import os_ken.controller.controller  # noqa: F401  (registers the ofp-* options)
    from os_ken import cfg

    from netfate.controller.app import ControllerApp

    cfg.CONF(
        args=["--ofp-listen-host", listen_host, "--ofp-tcp-listen-port", str(listen_port)],
        project="os_ken",
    )
    ControllerApp.nats_url = nats_url
    ControllerApp.purge_foreign = purge_foreign
    ControllerApp.metrics_port = metrics_port
    ControllerApp.controller_id = controller_id
    logging.getLogger("netfate.controller").info(
        "OpenFlow controller on %s:%d, NATS %s", listen_host, listen_port, nats_url or "off"
    )
    app_manager.AppManager.run_apps(["netfate.controller.app"])
