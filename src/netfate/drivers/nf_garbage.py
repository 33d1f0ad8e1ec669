"""What a crash mid-create leaves of a node's NFs, found and removed at agent start: NF
namespaces, pool entries, cgroups, instance directories and records with no instance."""

from __future__ import annotations

import shutil
from pathlib import Path

from netfate import naming
from netfate.drivers import cgroups, netns, nf_pool
from netfate.drivers.nf_records import InstanceRecords


def collect(node: str, records: InstanceRecords, nfs_dir: Path, pooled: set[str],
            pool_tag: str) -> list[str]:
    """Remove, on `node`, what no instance record of any flavour holds (`pooled`: the pool
    entries a live pool holds). Returns what was removed (names and paths)."""
    every = records.all_flavours()  # several flavours share the node's namespaces
    known = {i.instance_id for i in every}
    known_ns = {i.netns for i in every} | pooled
    removed = []
    for ns in nf_pool.leftovers(node, pooled, tag=pool_tag):
        netns.delete(ns)
        removed.append(ns)
    prefix = f"{naming.PREFIX}{node}-"
    for ns in netns.list_names():
        if ns.startswith(prefix) and ns not in known_ns:
            # Deleting the namespace destroys its veths, and with them their outer ends.
            netns.delete(ns)
            removed.append(ns)
    for cg in cgroups.list_ours():
        if cg.startswith(f"{node}-") and cg not in known:
            cgroups.delete(cg)
            removed.append(f"cgroup {cg}")
    if nfs_dir.is_dir():
        for d in nfs_dir.iterdir():
            if d.name not in known:
                shutil.rmtree(d, ignore_errors=True)
                records.forget(d.name)
                removed.append(str(d))
    rdir = records.records_dir
    for r in sorted(rdir.glob("*.json")) if rdir.is_dir() else []:
        if r.stem not in known and not records.dir(r.stem).exists():
            r.unlink(missing_ok=True)  # a record whose directory is gone
            removed.append(str(r))
    return removed
