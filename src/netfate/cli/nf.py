"""netfate nf ...: a node's compute and network abstractions, driven directly on the testbed."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from netfate.cli.common import (
    checked,
    console,
    emit_json,
    given_path,
    guarded,
    json_document,
    json_object,
    need_root,
    read_file,
    results,
    settings,
)
from netfate.errors import NotFound

if TYPE_CHECKING:
    from netfate.testbed.context import Testbed

# The drivers, OVS and os-ken are imported by the commands that use them, not here: the
# `netfate` entry point imports this module for every command (an agent's start, `netfate
# nodes`), and they took 0.6 s of its 0.9 s of imports.
app = typer.Typer(help="Native NFs on a testbed node: bundles, lifecycle, state, steering.")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]
NodeArg = Annotated[str, typer.Argument(help="The node, e.g. cpe1", callback=checked("name"))]
InstanceArg = Annotated[str, typer.Argument(help="The NF instance id, e.g. cpe1-user1-firewall",
                                            callback=checked("instance-id"))]
_script_timeout: float | None = None  # None: the driver's default


@app.callback()
def _load_settings() -> None:
    """The entry point of every `netfate nf` command: settings built once, here."""
    global _script_timeout
    _script_timeout = settings().compute.script_timeout


def _attach() -> Testbed:
    from netfate.drivers.native import SCRIPT_TIMEOUT
    from netfate.testbed.context import Testbed

    return Testbed.attach(script_timeout=_script_timeout or SCRIPT_TIMEOUT)


def _config(text: str | None) -> dict[str, Any]:
    """The --config given (JSON or @file), checked before anything else is done; given
    empty or blank it is refused (json_object), not taken as {}."""
    return guarded(lambda: json_object(text, "config"))


def _resolve_bundle(tb: Testbed, ref: str) -> str:
    from netfate import catalogue

    if ref in catalogue.NAMES:
        return catalogue.install(tb.store, ref).sha256
    return tb.store.get(ref).sha256


@app.command("catalogue")
def catalogue_cmd(json_out: JsonOpt = False) -> None:
    """The NFs shipped with NetFATE, with their bundle sha256 and their implementations
    (flavours, in the NF's order of preference, with what each needs)."""
    from netfate import catalogue
    from netfate.bundle import inspect_bundle, sha256_of

    def go() -> list[dict[str, Any]]:
        rows = []
        for name in catalogue.NAMES:
            data = catalogue.bundle_bytes(name)
            desc, _ = inspect_bundle(data)
            rows.append({"name": name, "version": desc.version, "sha256": sha256_of(data),
                         "bytes": len(data), "capabilities": desc.capabilities,
                         "description": desc.description,
                         "implementations": [
                             {"flavour": i.flavour, "memory-mb": i.memory_mb,
                              "cpu-percent": i.cpu_percent, "disk-mb": i.disk_mb}
                             for i in desc.implementation_list()]})
        return rows

    rows = guarded(go)
    if json_out:
        emit_json(rows)
        return
    t = Table("name", "version", "bytes", "implementations", "capabilities", "sha256")
    for r in rows:
        impls = ", ".join(f"{i['flavour']} ({i['memory-mb']} MB, {i['cpu-percent']}% CPU"
                          + (f", {i['disk-mb']} MB disk" if i["disk-mb"] else "") + ")"
                          for i in r["implementations"])
        t.add_row(r["name"], r["version"], str(r["bytes"]), impls, ",".join(r["capabilities"]),
                  r["sha256"][:16])
    results.print(t)


@app.command("bundle-add")
def bundle_add(
    path: Annotated[Path, typer.Argument(help="The bundle (.tgz)", parser=given_path)],
    sha256: Annotated[str | None, typer.Option(help="Refuse unless the bundle has this sha256")]
    = None,
    json_out: JsonOpt = False,
) -> None:
    """Validate a bundle (.tgz) and add it to the node's store."""
    from netfate.bundle import MAX_BUNDLE_BYTES

    data = guarded(lambda: read_file(path, "bundle", MAX_BUNDLE_BYTES))
    need_root()

    def go() -> dict[str, Any]:
        with _attach() as tb:
            b = tb.store.add(data, sha256)
            return {"sha256": b.sha256, "name": b.descriptor.name,
                    "version": b.descriptor.version}

    out = guarded(go)
    emit_json(out) if json_out else console.print(f"added {out['name']} {out['sha256']}")


@app.command()
def deploy(
    node: NodeArg,
    owner: Annotated[str, typer.Argument(callback=checked("name"))],
    nf: Annotated[str, typer.Argument(help="Catalogue name or bundle sha256")],
    name: Annotated[str | None, typer.Option(help="Instance name (default: the NF's)",
                                             callback=checked("name"))] = None,
    config: Annotated[str | None, typer.Option(help="JSON config, or @file (not empty: "
                                                    "give {} for none)")] = None,
    json_out: JsonOpt = False,
) -> None:
    """create_nf + ports on LSI-0 + start_nf, rolled back if any step fails."""
    cfg = _config(config)
    need_root()

    def go() -> dict[str, Any]:
        with _attach() as tb:
            n = tb.node(node)
            sha = _resolve_bundle(tb, nf)
            inst = name or tb.store.get(sha).descriptor.name
            return asdict(n.deploy_nf(owner, inst, sha, cfg))

    out = guarded(go)
    emit_json(out) if json_out else console.print(
        f"[green]{out['instance_id']}[/] {out['state']} on {out['node']}"
    )


@app.command()
def steer(
    host: Annotated[str, typer.Argument(help="Testbed host whose traffic to steer",
                                        callback=checked("name"))],
    instances: Annotated[list[str], typer.Argument(help="NF instance ids, in chain order",
                                                   callback=checked("instance-id"))],
    json_out: JsonOpt = False,
) -> None:
    """Steer a host's traffic through NFs on its access node (createTSRule)."""
    need_root()

    def go() -> list[dict[str, Any]]:
        with _attach() as tb:
            n = tb.node(tb.access(host)[0])
            chain = [n.driver_of(i).info(i) for i in instances]
            # Through the orchestrator when the testbed runs one, else on the LSI directly.
            rules = tb.steer(host, chain)
            return [r.model_dump(mode="json") for r in rules]

    out = guarded(go)
    emit_json(out) if json_out else console.print(f"{len(out)} steering rules installed")


def _op(node: str, instance: str, op: str, arg: Any = None) -> Any:
    with _attach() as tb:
        n = tb.node(node)
        if op == "delete":
            try:
                n.driver_of(instance)
            except NotFound:  # its leftovers (if any) go all the same; the user is told
                tb.remove_nf(node, instance)
                raise NotFound(f"no NF {instance!r} on node {node}: nothing to delete") from None
            tb.remove_nf(node, instance)
            return {"instance_id": instance, "state": "deleted"}
        fn = getattr(n.driver_of(instance), op)
        res = fn(instance) if arg is None else fn(instance, arg)
        if res is None:
            return {"instance_id": instance, "ok": True}
        return res if isinstance(res, dict) else asdict(res)


def _lifecycle(op: str, doc: str) -> None:
    def cmd(node: NodeArg, instance: InstanceArg, json_out: JsonOpt = False) -> None:
        need_root()
        out = guarded(lambda: _op(node, instance, op))
        if json_out or op in ("status", "export_state"):
            emit_json(out)
        else:
            console.print(f"{instance}: {out.get('state', 'done')}")

    cmd.__doc__ = doc
    app.command(op.replace("_nf", "").replace("_", "-"))(cmd)


for _op_name, _doc in (
    ("start_nf", "startNF: start (or resume) the NF."),
    ("stop_nf", "stopNF: stop the NF, keeping its resources."),
    ("pause_nf", "pauseNF: suspend the NF (freezer cgroup)."),
    ("delete", "deleteNF: stop, delete and release everything."),
    ("status", "The NF's state and its own status output."),
    ("export_state", "Print the NF's state document (JSON)."),
):
    _lifecycle(_op_name, _doc)


@app.command()
def update(node: NodeArg, instance: InstanceArg,
           config: Annotated[str, typer.Argument(help="JSON, or @file; not empty ({} is "
                                                      "an empty config)")],
           json_out: JsonOpt = False) -> None:
    """updateNF: apply a new config (JSON or @file) while running."""
    cfg = _config(config)
    need_root()
    out = guarded(lambda: _op(node, instance, "update_nf", cfg))
    emit_json(out) if json_out else console.print(f"{instance}: updated")


@app.command("import-state")
def import_state(node: NodeArg, instance: InstanceArg,
                 path: Annotated[Path, typer.Argument(help="The state document (JSON), as "
                                                      "export-state prints it",
                                                      parser=given_path)]) -> None:
    """Import a state document (from export-state) into an NF."""
    doc = guarded(lambda: json_document(f"@{path}", "state document"))
    need_root()
    guarded(lambda: _op(node, instance, "import_state", doc))
    console.print(f"{instance}: state imported")


@app.command("list")
def list_cmd(node: Annotated[str | None, typer.Option(callback=checked("name"))] = None,
             json_out: JsonOpt = False) -> None:
    """NFs on the testbed's nodes."""
    need_root()

    def go() -> list[dict[str, Any]]:
        with _attach() as tb:
            names = [node] if node else tb.node_names
            return [asdict(i) for n in names for i in tb.node(n).list_nfs()]

    rows = guarded(go)
    if json_out:
        emit_json(rows)
        return
    t = Table("instance", "node", "owner", "name", "state", "ports")
    for r in rows:
        t.add_row(r["instance_id"], r["node"], r["owner"], r["name"], r["state"],
                  ", ".join(f"{p['name']}={p['host_if']}" for p in r["ports"]))
    results.print(t)
