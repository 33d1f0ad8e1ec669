"""The agent's side of live migration (VM flavour: netfate.drivers.vm_migrate), as four bus
commands the orchestrator's executor sends when it moves an NF (orchestrator/executor.py):

- ``migrate_spec`` (source): whether the NF's driver can live-migrate (the driver capability
  ``live_migrate``) and, if so, what the target needs to make an identical VM;
- ``migrate_in`` (target): turn the freshly instantiated NF into a QEMU waiting for the
  guest (its taps stay on the LSI); replies the URI;
- ``migrate_out`` (source): send the running guest there; replies QEMU's figures (ms);
- ``migrate_finish`` (target): record the arrived guest as running.

Every function runs in the agent's worker thread and raises the drivers' errors, which the
agent turns into a failed reply: the executor then falls back to export/import, or undoes.
"""

from __future__ import annotations

from typing import Any

from netfate.errors import InvalidInput
from netfate.node import NodeDrivers

OPS = ("migrate_spec", "migrate_in", "migrate_out", "migrate_finish")
# Where the target's QEMU listens: every agent of the testbed runs on this machine. A
# deployment across machines would give each agent its migration address.
MIGRATION_HOST = "127.0.0.1"


def handle(node: NodeDrivers, op: str, instance_id: str, payload: dict[str, Any]
           ) -> dict[str, Any]:
    """Run one of OPS for the NF ``instance_id`` on ``node``; the reply's data.
    InvalidInput for an unknown op, an NF whose driver can't live-migrate (migrate_in,
    migrate_out, migrate_finish) or a payload without what the op needs."""
    drv: Any = node.driver_of(instance_id)
    live = bool(getattr(drv, "live_migrate", False))
    if op == "migrate_spec":
        return {"live_migrate": True, **drv.migration_spec(instance_id)} if live else \
            {"live_migrate": False}
    if not live:
        raise InvalidInput(f"{instance_id} runs in flavour {drv.flavour}, which does not "
                           "live-migrate")
    if op == "migrate_in":
        info = drv.prepare_incoming(payload, MIGRATION_HOST)
        return {"uri": info.detail["incoming"]}
    if op == "migrate_out":
        uri = payload.get("uri")
        if not isinstance(uri, str):
            raise InvalidInput("migrate_out needs the target's uri")
        figures: dict[str, Any] = drv.migrate_out(instance_id, uri)
        return figures
    if op == "migrate_finish":
        info = drv.finish_incoming(instance_id, str(payload.get("state", "running")))
        return {"state": str(info.state)}
    raise InvalidInput(f"unknown live-migration command {op!r}")
