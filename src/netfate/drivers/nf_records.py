"""The drivers' bookkeeping: one directory per NF instance on a node (config.json and the
state/ and run/ directories its scripts use), and its record beside them, never in it.

The record (``<nfs_dir>.records/<instance id>.json``: names, ports, own MACs, state) is
what the driver acts on, so it lives where no NF can write: a container has its instance
directory bound read-write at /nf/dir, and a record there could be rewritten by the NF
(its own MACs, say, to have another device's traffic steered to it)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from dataclasses import asdict
from pathlib import Path

from netfate import naming
from netfate.drivers import nf_files
from netfate.errors import NotFound
from netfate.interfaces import NFInfo, NFPort, NFState

log = logging.getLogger("netfate.drivers")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# an instance id names a file: no separator, no leading dot (naming.nf_instance_id makes them)
_INSTANCE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")


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


MAX_RECORD = 1 << 20  # bytes: an instance.json is a few hundred


def check_identity(info: NFInfo, instance_id: str, node: str) -> str:
    """Why ``info`` cannot be the record of ``instance_id`` on ``node`` ("" if it can): every
    name the driver acts on (the namespace it enters, the host interfaces it deletes) must be
    the one derived from the node, owner and NF name, so a record rewritten by its NF (it
    can write its directory) cannot point the driver at the host's namespace, another NF's,
    or a host interface."""
    fields = (info.instance_id, info.node, info.owner, info.name)
    if not all(isinstance(f, str) for f in fields):
        return "names are not text"
    if info.node != node or info.instance_id != instance_id or \
            naming.nf_instance_id(info.node, info.owner, info.name) != instance_id:
        return "node, owner or name"
    if info.netns is not None and info.netns != naming.nf_netns(node, info.owner, info.name):
        return "namespace"
    for p in info.ports:
        if not isinstance(p.name, str) or p.host_if != naming.nf_port(instance_id, p.name):
            return "ports"
    if not isinstance(info.bundle_sha256, str) or not _SHA256.fullmatch(info.bundle_sha256):
        return "bundle"
    return ""


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

    @property
    def records_dir(self) -> Path:
        """Where the records are: beside the instance directories, out of every NF's reach."""
        return self.nfs_dir.with_name(self.nfs_dir.name + ".records")

    def has(self, instance_id: str) -> bool:
        """Whether the instance has a record (readable or not)."""
        return (self.records_dir / f"{instance_id}.json").is_file()

    def save(self, info: NFInfo) -> None:
        """Write the record atomically (a reader never sees half of it); the temporary file
        is made afresh (O_EXCL, no link followed)."""
        d = self.records_dir
        d.mkdir(parents=True, exist_ok=True)
        tmp = f".{info.instance_id}.json.tmp"
        fd = nf_files.create(d, tmp)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(asdict(info), indent=1))
        os.replace(d / tmp, d / f"{info.instance_id}.json")

    def forget(self, instance_id: str) -> None:
        """Remove the record (a no-op if there is none): with the instance's directory."""
        with contextlib.suppress(FileNotFoundError):
            (self.records_dir / f"{instance_id}.json").unlink()

    def load(self, instance_id: str) -> NFInfo:
        """The instance's record; NotFound if it has none or no directory, or if what is
        there is not a record of this NF (see `check_identity`): read without following a
        link, bounded, and its identity (node, owner, name, namespace, host interfaces) must
        be the one derived from the instance id."""
        if not _INSTANCE_ID.fullmatch(instance_id) or not self.dir(instance_id).is_dir():
            raise NotFound(f"no NF {instance_id!r} on node {self.node}")
        try:
            raw = nf_files.read(self.records_dir, f"{instance_id}.json", limit=MAX_RECORD)
        except (FileNotFoundError, NotADirectoryError):
            raw = None
        except OSError as exc:  # a link, a FIFO, a huge file in the record's place
            raise NotFound(f"NF {instance_id!r} on node {self.node}: {exc}") from None
        if raw is None:
            raise NotFound(f"no NF {instance_id!r} on node {self.node}")
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise TypeError("not an object")
            if self.flavour is not None and data.get("flavour", "native") != self.flavour:
                raise NotFound(f"no {self.flavour} NF {instance_id!r} on node {self.node}")
            data["ports"] = [NFPort(**p) for p in data["ports"]]
            data["state"] = NFState(data["state"])
            info = NFInfo(**data)
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            raise NotFound(f"NF {instance_id!r} on node {self.node}: its record is "
                           f"damaged ({type(exc).__name__})") from None
        why = check_identity(info, instance_id, self.node)
        if why:
            log.error("NF %s on node %s: its record was tampered with (%s); ignored",
                      instance_id, self.node, why)
            raise NotFound(f"NF {instance_id!r} on node {self.node}: its record is not "
                           f"its own ({why})")
        return info

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
            if not d.is_dir():
                continue
            with contextlib.suppress(NotFound, ValueError, KeyError, TypeError):
                out.append(reader.load(d.name))
        return out
