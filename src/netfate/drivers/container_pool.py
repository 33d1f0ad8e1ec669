"""Pre-made containers that a container NF is born into (SOCK and Catalyzer start sandboxes
by handing out pre-made ones; here `runc create` of the NF's image, ~70-180 ms on this
loaded 2-core machine, leaves the critical path and only `runc start`, ~15 ms, stays on it).

An entry is, for one bundle and port layout: a fresh namespace with its ports (nf_pool's
make_entry), an empty instance directory (state/, run/) bound at /nf/dir, and a container
made by `runc create` on the bundle's image in that namespace, under the entry's name
(container id, cgroup), its process waiting in `runc init` for `runc start`. The driver
writes the spec (container_spec) and calls `make`; this module only keeps and refills
(through refill_pool, as nf_pool does).

When the image's process is the catalogue's idle one (`busybox sleep inf`, oci.build.IDLE_CMD:
it reads nothing at its start, so nothing of the NF's need be there when it starts), the
entry is also started ahead, and `runc start` (7-22 ms on a start's path here, beside the
rest of create under load) leaves the critical path too. Any other image's entry waits in
`runc init` as described, and starts once it is the NF's.

Adoption (`adopt`) gives the entry its NF's identity before it starts, so everything after
it (accounting and limits by the instance id's cgroup, `runc exec/pause/delete` by the
instance's container id, telemetry, garbage collection) is exactly as for a container made
for the NF: the cgroup v1 directories, which hold every controller the driver uses, are
renamed (the kernel allows it within a parent), runc's state directory is renamed and its
state file (runc 1.1's format: id, cgroup_paths, config.cgroups.path, labels) rewritten to
match. The cgroup v2 membership stays in the entry's directory (v2 refuses renames): on these
hybrid cgroups v2 has no controller enabled (only its pressure and CPU statistics, which
nothing reads), and moving a process there waits for an RCU grace period (`cgroup.procs`:
10-18 ms measured on 2026-12-02, half a pooled start's container-only cost). runc's state
keeps that path, so `runc exec` joins it and `runc delete` removes it; a discarded entry's
is removed by name.

Privacy: entries are only ever made fresh and handed out once; closing the pool destroys
what it holds; an NF's container is never returned to the pool.

Names: `fate-cwarm-<node>-<pid>-<n>` (namespace, container id; cgroup without `fate-`), so
an NF's garbage collection (names `fate-<node>-...`) never takes them, `leftovers` finds
those of an ended process, and `testbed down` removes them with everything else of ours.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netfate import naming
from netfate.drivers import cgroups
from netfate.drivers.nf_pool import Entry
from netfate.drivers.refill_pool import Refill, RefillPool
from netfate.errors import DriverError

log = logging.getLogger(__name__)
TAG = "cwarm"
REFILL_NICE = 10  # the refill thread's (and so its runc's) nice value: an NF's create first
REFILL_DELAY = 0.1  # s after a take before refilling: the taking create has the CPU first
BUSY_WAIT = 0.005  # s a filler sleeps, before looking again, while another makes the rest
UNIFIED = ""  # runc's key for the cgroup v2 (unified) path in a hybrid setup


@dataclass(frozen=True)
class Pooled:
    name: str          # the entry's name: its container id and namespace
    entry: Entry       # the namespace with its ports
    home: Path         # the entry's directory: dir/ (bound at /nf/dir) and bundle/ (spec)
    image: str = ""    # its image's tag in the node's store, and the image's digest
    digest: str = ""
    started: bool = False  # `runc start` done ahead (an idle process: see the docstring)

    @property
    def cgroup(self) -> str:
        return self.name[len(naming.PREFIX):]

    @property
    def nf_dir(self) -> Path:
        return self.home / "dir"

    @property
    def bundle(self) -> Path:
        return self.home / "bundle"


def prefix(node: str) -> str:
    return f"{naming.PREFIX}{TAG}-{node}-"


class ContainerPool(RefillPool[Pooled]):
    """Entries for one bundle and port layout on one node, refilled in the background
    (refill_pool, at nice REFILL_NICE, REFILL_DELAY s after a take) by calling
    ``make(name)`` (which builds one and returns it, or raises having left nothing) and
    destroyed by ``discard(entry)``."""

    def __init__(self, node: str, size: int, make: Callable[[str], Pooled],
                 discard: Callable[[Pooled], None]) -> None:
        self.node = node
        super().__init__(prefix(node), size, make, discard, Refill(
            thread_name=f"container-pool-{node}", what=f"container pool of {node}", log=log,
            busy_wait=BUSY_WAIT, join_timeout=30, delay=REFILL_DELAY, nice=REFILL_NICE,
            quiet_close=True))

    def names(self) -> set[str]:
        """The entries' names (container ids, namespaces) the pool holds now."""
        return {e.name for e in self.entries()}


# -- adoption: the entry's container takes the NF's identity -------------------------------
def adopt_cgroups(state: dict[str, Any], old: str, new: str) -> dict[str, str]:
    """Rename the cgroup v1 directories of the container of runc state `state` from `old` to
    `new` (names under the project's parent); its v2 path is kept (module docstring). The
    new paths, by runc's controller keys. DriverError (OSError's message) if the kernel
    refuses."""
    paths: dict[str, str] = {}
    try:
        for key, p in sorted(state.get("cgroup_paths", {}).items()):
            src = Path(p)
            if src.name != old:
                raise DriverError(f"pooled container's cgroup {p} is not {old}")
            if key == UNIFIED:
                paths[key] = p
                continue
            dst = src.with_name(new)
            with contextlib.suppress(OSError):
                dst.rmdir()  # an empty one the driver made already (cgroups.create)
            src.rename(dst)
            paths[key] = str(dst)
    except OSError as exc:
        raise DriverError(f"cannot move the pooled container to cgroup {new}: {exc}") from exc
    return paths


def rename_state(root: Path, old_id: str, new_id: str, cgroup: str, bundle: Path,
                 netns_path: str) -> dict[str, Any]:
    """Rename runc's container `old_id` to `new_id` under state root `root`, its cgroups to
    `cgroup` (adopt_cgroups), recording `bundle` and `netns_path` as its bundle and network
    namespace. Returns the new state. DriverError if it is not a created container of ours."""
    src, dst = root / old_id, root / new_id
    try:
        state: dict[str, Any] = json.loads((src / "state.json").read_text())
    except (OSError, ValueError) as exc:
        raise DriverError(f"pooled container {old_id} has no readable state: {exc}") from exc
    if dst.exists():
        raise DriverError(f"container {new_id} exists already")
    old_cg = Path(str(state["config"]["cgroups"]["path"])).name
    state["cgroup_paths"] = adopt_cgroups(state, old_cg, cgroup)
    state["id"] = new_id
    cfg = state["config"]
    cfg["cgroups"]["path"] = f"/{naming.cgroup_parent()}/{cgroup}"
    cfg["labels"] = [f"bundle={bundle}" if str(lb).startswith("bundle=") else lb
                     for lb in cfg.get("labels") or []]
    for ns in cfg.get("namespaces") or []:
        if ns.get("type") == "NEWNET":
            ns["path"] = netns_path
    os.rename(src, dst)
    tmp = dst / ".state.json.tmp"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, dst / "state.json")
    return state


def remove_cgroups(*names: str) -> None:
    """Remove the cgroup `names` from every hierarchy (runc makes them in all), killing what
    is left in them first (cgroups.delete); only empty ones go."""
    root = cgroups.ROOT
    hierarchies = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    for name in names:
        cgroups.delete(name)
        for h in hierarchies:
            with contextlib.suppress(OSError):
                (h / naming.cgroup_parent() / name).rmdir()


def remove_home(home: Path) -> None:
    shutil.rmtree(home, ignore_errors=True)


def leftovers(node: str, names: list[str], keep: set[str]) -> list[str]:
    """Of `names` (container ids, namespaces or directory names), the pool entries of `node`
    that no live pool holds: those of an ended process, and this process's not in `keep`."""
    from netfate.drivers.nf_pool import orphans

    return orphans(prefix(node), names, keep)
