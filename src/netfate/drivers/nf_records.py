"""The native driver's bookkeeping: one directory per NF instance on a node, holding its
record (instance.json), config.json, and the state/ and run/ directories its scripts use."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from netfate.errors import NotFound
from netfate.interfaces import NFInfo, NFPort, NFState


def dead_daemons(run_dir: Path) -> list[str]:
    """The NF's long-lived daemons (``<run_dir>/<name>.pid``: "PID STARTTIME", written by the
    bundles' common.sh daemon_start) whose process no longer runs, by name. The
    troubleshooter's one-shot requests (req-*.pid) end by design and are not daemons."""
    from netfate.supervisor import Record, ours

    out = []
    for f in sorted(run_dir.glob("*.pid")) if run_dir.is_dir() else []:
        if f.name.startswith("req-"):
            continue
        try:
            parts = f.read_text().split()
            rec = Record(int(parts[0]), int(parts[1]) if len(parts) > 1 else None)
        except (OSError, ValueError, IndexError):
            continue  # being written (daemon_start renames it into place)
        if not ours(rec):
            out.append(f.stem)
    return out


class InstanceRecords:
    """The records of a node's native NFs, under ``nfs_dir`` (``<rundir>/nodes/<node>/nfs``)."""

    def __init__(self, node: str, nfs_dir: Path, flavour: str | None = None) -> None:
        """`flavour`: only records of that flavour are this driver's (several flavours keep
        their records side by side here, one directory per instance); None: every one."""
        self.node = node
        self.nfs_dir = nfs_dir
        self.flavour = flavour

    def dir(self, instance_id: str) -> Path:
        """The instance's directory (it may not exist)."""
        return self.nfs_dir / instance_id

    def save(self, info: NFInfo) -> None:
        """Write the record atomically (a reader never sees half of it)."""
        d = self.dir(info.instance_id)
        tmp = d / ".instance.json.tmp"
        tmp.write_text(json.dumps(asdict(info), indent=1))
        os.replace(tmp, d / "instance.json")

    def load(self, instance_id: str) -> NFInfo:
        """The instance's record; NotFound if it has none."""
        try:
            data = json.loads((self.dir(instance_id) / "instance.json").read_text())
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"no NF {instance_id!r} on node {self.node}") from None
        if self.flavour is not None and data.get("flavour", "native") != self.flavour:
            raise NotFound(f"no {self.flavour} NF {instance_id!r} on node {self.node}")
        data["ports"] = [NFPort(**p) for p in data["ports"]]
        data["state"] = NFState(data["state"])
        return NFInfo(**data)

    def all(self) -> list[NFInfo]:
        """Every readable record of this flavour, by instance id; unreadable ones are skipped
        (garbage collection removes their directories)."""
        return self._all(self)

    def all_flavours(self) -> list[NFInfo]:
        """Every readable record on the node, whatever its flavour."""
        return self._all(InstanceRecords(self.node, self.nfs_dir))

    def _all(self, reader: InstanceRecords) -> list[NFInfo]:
        if not self.nfs_dir.is_dir():
            return []
        out = []
        for d in sorted(self.nfs_dir.iterdir()):
            with contextlib.suppress(NotFound, ValueError, KeyError, TypeError):
                out.append(reader.load(d.name))
        return out
