"""State export and import for native NFs: the `netfate-state/1` document that passes
between an NF's export-state and import-state scripts (through files named in NF_EXPORT_FILE
and NF_IMPORT_FILE), checked on both sides."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netfate.bundle import Bundle
from netfate.drivers import nf_files
from netfate.drivers.create_checks import owners_config
from netfate.errors import DriverError, InvalidInput
from netfate.interfaces import NFInfo

STATE_FORMAT = "netfate-state/1"
MAX_STATE_BYTES = 64 << 20  # an exported state document (conntrack tables, counters)

# Runs the given lifecycle action with extra environment variables; returns its stdout.
RunScript = Callable[[str, dict[str, str]], str]


def export_state(info: NFInfo, bundle: Bundle, nf_dir: Path, run: RunScript) -> dict[str, Any]:
    """Run export-state and return the document it wrote.

    Raises InvalidInput if the bundle does not export state, DriverError if the script
    fails or writes something other than a `STATE_FORMAT` JSON object.
    """
    if not bundle.descriptor.state.exportable:
        raise InvalidInput(f"{bundle.descriptor.name} does not export state")
    rel = "run/export.json"
    nf_files.unlink(nf_dir, rel)
    run("export-state", {"NF_EXPORT_FILE": str(nf_dir / rel)})
    try:  # the NF's to write: no link followed, bounded (drivers/nf_files.py)
        data = nf_files.read(nf_dir, rel, limit=MAX_STATE_BYTES)
        if data is None:
            raise DriverError(f"{info.instance_id}: export-state wrote no document")
        doc = json.loads(data)
    except (OSError, ValueError, RecursionError) as exc:
        raise DriverError(f"{info.instance_id}: export-state wrote bad JSON: {exc}") from None
    finally:
        nf_files.unlink(nf_dir, rel)
    if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
        raise DriverError(f"{info.instance_id}: export-state did not write {STATE_FORMAT}")
    return doc


def import_state(info: NFInfo, bundle: Bundle, nf_dir: Path, state: dict[str, Any],
                 run: RunScript) -> None:
    """Check ``state`` and hand it to import-state. A config in the document is validated,
    written to config.json and set on ``info`` (the caller saves the record).

    Raises InvalidInput if the bundle does not import state or the document is not a
    `STATE_FORMAT` document for this NF (or its config is invalid); DriverError if the
    script fails.
    """
    desc = bundle.descriptor
    if not desc.state.exportable:
        raise InvalidInput(f"{desc.name} does not import state")
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise InvalidInput(f"state document must have format {STATE_FORMAT!r}")
    if state.get("nf") != desc.name:
        raise InvalidInput(f"state is for {state.get('nf')!r}, not {desc.name!r}")
    if "config" in state:
        cfg = owners_config(desc, info.owner, state["config"])
        (nf_dir / "config.json").write_text(json.dumps(cfg))
        info.config = cfg
        state = {**state, "config": cfg}
    rel = "run/import.json"
    try:  # a fresh file: never written through a link the NF planted there
        with os.fdopen(nf_files.create(nf_dir, rel), "w") as fh:
            fh.write(json.dumps(state))
    except OSError as exc:
        raise DriverError(f"{info.instance_id}: cannot hand import-state its document: "
                          f"{exc}") from None
    try:
        run("import-state", {"NF_IMPORT_FILE": str(nf_dir / rel)})
    finally:
        nf_files.unlink(nf_dir, rel)
