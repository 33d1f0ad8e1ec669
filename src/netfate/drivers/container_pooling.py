"""The container driver's pool of pre-made containers (drivers/container_pool.py keeps and
refills them; this is the driver's side: making one, an NF's adoption of one, destroying
one), as a base class of ContainerCompute, which gives it the image and spec it needs."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from netfate.bundle import Bundle
from netfate.drivers import cgroups, container_spec, netns, nf_pool
from netfate.drivers import container_pool as cpool
from netfate.drivers.native import NativeCompute
from netfate.drivers.runc import TIMEOUT as RUNC_TIMEOUT
from netfate.drivers.runc import Runc, container_id
from netfate.errors import DriverError
from netfate.interfaces import NFInfo
from netfate.oci.layout import IDLE_CMD
from netfate.oci.store import ImageStore
from netfate.proc import NETNS_DIR
from netfate.queue import NF_QUEUES


class PooledContainers(NativeCompute):
    """What ContainerCompute does with its pools (sized by ``pool_size``, as native's)."""

    runc: Runc
    images: ImageStore
    _cpools: dict[tuple[str, tuple[str, ...]], cpool.ContainerPool]
    # instance id -> its pre-made container, and its adoption under way
    _adopting: dict[str, tuple[cpool.Pooled, Future[None]]]
    _adopt_pool: ThreadPoolExecutor | None

    def image_for(self, bundle: Bundle) -> str:
        raise NotImplementedError

    def _cdir(self, instance_id: str) -> Path:
        raise NotImplementedError

    def _spec(self, bundle: Bundle, tag: str, *, hostname: str, netns: str, cgroup: str,
              nf_dir: Path, notify_dir: Path, cache_dir: Path,
              node_files: list[str] | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def _make_cgroups(self, info: NFInfo, bundle: Bundle,
                      undo: list[Callable[[], object]]) -> None:
        with self._guard:
            if info.instance_id in self._adopting:
                return  # the pre-made container's cgroups (same limits) become the NF's
        super()._make_cgroups(info, bundle, undo)

    # -- the pool of pre-made containers (container_pool) ---------------------------------
    def container_pool(self, bundle: Bundle,
                       ports: tuple[str, ...]) -> cpool.ContainerPool | None:
        """The pool of pre-made containers of this bundle with these ports (made on first
        use, refilled in the background); None when pool_size is 0."""
        if self.pool_size <= 0:
            return None
        key = (bundle.sha256, ports)
        with self._guard:
            pool = self._cpools.get(key)
            if pool is None:
                pool = cpool.ContainerPool(
                    self.node, self.pool_size,
                    lambda name: self._make_pooled(bundle, ports, name), self._discard)
                self._cpools[key] = pool
            return pool

    def warm(self, bundle_sha256: str, ports: tuple[str, ...] = ("lan", "wan")) -> None:
        """Fill the bundle's container pool now (when pool_size > 0). NotFound for an
        unknown bundle."""
        pool = self.container_pool(self.store.get(bundle_sha256), ports)
        if pool is not None:
            pool.fill()

    def pooled_memory_bytes(self) -> int:
        """Memory the pre-made containers hold now (their cgroups), in bytes."""
        with self._guard:
            pools = list(self._cpools.values())
        return sum(cgroups.memory_bytes(e.cgroup) or 0 for p in pools for e in p.entries())

    def set_pool_size(self, size: int, warm: tuple[str, ...] | None = None) -> None:
        """As native's; the container pools are warmed per bundle (`warm`)."""
        super().set_pool_size(size, warm)

    def close(self) -> None:
        """Release the namespace pools and destroy the pre-made containers (idempotent)."""
        super().close()
        with self._guard:
            pools, self._cpools = list(self._cpools.values()), {}
        for p in pools:
            p.close()

    def _take_entry(self, info: NFInfo, bundle: Bundle,
                    undo: list[Callable[[], object]]) -> nf_pool.Entry | None:
        """A pre-made container's namespace (the container pool, never native's namespace
        pool: one pool per NF, not two). Its adoption (_adopt_start) begins at once in
        another thread: moving its cgroups waits ~10-15 ms for the kernel (cgroup v2
        membership: an RCU grace period) while create goes on here; its directories become
        the NF's now (_adopt_dirs, before anything else writes to the instance directory),
        and only then may the adoption start it. _adopted waits for it."""
        if bundle.descriptor.node_files:
            return None  # its node files are bound when its container is made: made cold
        pool = self.container_pool(bundle, tuple(p.name for p in info.ports))
        if pool is None:
            return None
        pooled = pool.take()
        if pooled is None:
            return None  # an empty pool (a burst): made cold, as without one
        iid = info.instance_id
        undo.append(lambda: self._discard(pooled, iid))
        dirs = Gate()
        done = self._adopter().submit(self._adopt_start, info, pooled, dirs)

        def wait() -> None:  # before _discard (appended before this, so run after it)
            dirs.decide(False)
            with contextlib.suppress(Exception):
                done.result()
        undo.append(wait)
        with self._guard:
            self._adopting[iid] = (pooled, done)
        undo.append(lambda: self._adopting.pop(iid, None))
        self._adopt_dirs(info, pooled)
        dirs.decide(True)
        return pooled.entry

    def _adopted(self, instance_id: str) -> None:
        """Wait for the NF's pre-made container to be its own and started, if it is being
        adopted (no-op otherwise); what the adoption raised, it raises."""
        with self._guard:
            adopting = self._adopting.pop(instance_id, None)
        if adopting is not None:
            adopting[1].result()

    def _created(self, info: NFInfo) -> None:
        """create_nf's last step: the container runs when create returns, pooled or not."""
        self._adopted(info.instance_id)

    def _adopter(self) -> ThreadPoolExecutor:
        with self._guard:
            if self._adopt_pool is None:
                self._adopt_pool = ThreadPoolExecutor(max_workers=4,
                                                      thread_name_prefix="container-adopt")
            return self._adopt_pool

    def _adopt_start(self, info: NFInfo, pooled: cpool.Pooled, dirs: Gate) -> None:
        """The pre-made container becomes the NF's and starts: its spec, made for the pool
        entry, is the NF's own with the instance's names (for a later revival); runc's
        state and the cgroups take the NF's names (cpool.rename_state); once `dirs` says
        its directories are the NF's (its process must find the NF's files at its start,
        as a cold one does), `runc start`. Touches nothing create does meanwhile (the
        namespace, its ports, the instance directory's files)."""
        iid = info.instance_id
        cdir = self._cdir(iid)
        cdir.mkdir(parents=True, exist_ok=True)
        cfg = json.loads((pooled.bundle / "config.json").read_text())
        write_spec(cdir, container_spec.for_instance(
            cfg, hostname=iid[:63], netns=info.netns or "", cgroup=iid, nf_dir=self._idir(iid),
            notify_dir=self.queue.root / NF_QUEUES / iid,
            cache_dir=self.dir / "nf-cache" / iid))
        cpool.rename_state(self.runc.root, pooled.name, container_id(iid), iid, cdir,
                           f"{NETNS_DIR}/{info.netns}")
        if not dirs.wait(RUNC_TIMEOUT):
            raise DriverError(f"{iid}: create gave up before its pre-made container started")
        cpool.remove_home(pooled.home)
        if not pooled.started:
            self.runc.start(container_id(iid))

    def _make_pooled(self, bundle: Bundle, ports: tuple[str, ...],
                     name: str) -> cpool.Pooled:
        """A pre-made container (container_pool's module docstring); nothing is left of it
        if this raises."""
        pooled = cpool.Pooled(name, nf_pool.Entry(name, ()), self.dir / "cpool" / name)
        try:
            for sub in ("state", "run"):
                (pooled.nf_dir / sub).mkdir(parents=True)
            # Its own notification queue and cache, as a cold container's (renamed to the
            # NF's at adoption: the mounts follow the directories).
            (pooled.home / "notify").mkdir()
            (pooled.home / "cache").mkdir()
            pooled.bundle.mkdir()
            self.queue.ensure()
            entry = nf_pool.make_entry(name, ports, self.mtu)
            pooled = cpool.Pooled(name, entry, pooled.home)
            tag = self.image_for(bundle)
            pooled = cpool.Pooled(name, entry, pooled.home, tag,
                                  self.images.resolve(tag).digest)
            write_spec(pooled.bundle, self._spec(bundle, tag, hostname="nf", netns=name,
                                                  cgroup=pooled.cgroup, nf_dir=pooled.nf_dir,
                                                  notify_dir=pooled.home / "notify",
                                                  cache_dir=pooled.home / "cache"))
            self.runc.create(name, pooled.bundle, pooled.nf_dir / "run" / "container.log")
            if _idle(self.images.config(tag)):  # nothing read at its start: started ahead
                self.runc.start(name)
                pooled = dataclasses.replace(pooled, started=True)
        except BaseException:
            self._discard(pooled)
            raise
        return pooled

    def _discard(self, pooled: cpool.Pooled, instance_id: str | None = None) -> None:
        """Destroy a pre-made container, whatever part of it exists, and if it was being
        adopted by `instance_id`, what it had taken of that NF's identity."""
        ids = [pooled.name] + ([container_id(instance_id)] if instance_id else [])
        for cid in ids:
            with contextlib.suppress(DriverError):
                self.runc.delete(cid)
        nf_pool.delete_entry(pooled.entry.netns)
        cpool.remove_cgroups(pooled.cgroup, *([instance_id] if instance_id else []))
        cpool.remove_home(pooled.home)
        if instance_id:
            shutil.rmtree(self._cdir(instance_id), ignore_errors=True)
            shutil.rmtree(self.queue.root / NF_QUEUES / instance_id, ignore_errors=True)
            shutil.rmtree(self.dir / "nf-cache" / instance_id, ignore_errors=True)

    def _adopt_dirs(self, info: NFInfo, pooled: cpool.Pooled) -> None:
        """Give the pre-made container the NF's directories: its /nf/dir becomes the
        instance directory, holding what create put there so far, and its notification
        queue and cache take the NF's names (the bind mounts follow the directories)."""
        d = self._idir(info.instance_id)
        for child in sorted(d.iterdir()):
            if child.is_dir() and not any(child.iterdir()):
                child.rmdir()  # state/ and run/, empty: the pooled ones take their place
            else:
                os.rename(child, pooled.nf_dir / child.name)
        d.rmdir()
        os.rename(pooled.nf_dir, d)  # the container's /nf/dir mount follows the directory
        iid = info.instance_id
        queue_dir = self.queue.root / NF_QUEUES / iid
        queue_dir.parent.mkdir(parents=True, exist_ok=True)
        os.rename(pooled.home / "notify", queue_dir)  # its /nf/notify: this NF's queue
        cache_dir = self.dir / "nf-cache" / iid
        cache_dir.parent.mkdir(parents=True, exist_ok=True)
        os.rename(pooled.home / "cache", cache_dir)

    def _pool_garbage(self) -> list[str]:
        """Pre-made containers no live pool holds (of an ended process), destroyed."""
        with self._guard:
            keep = set().union(*(p.names() for p in self._cpools.values()))
        homes = sorted(d.name for d in (self.dir / "cpool").iterdir()) if (
            self.dir / "cpool").is_dir() else []
        removed: list[str] = []
        for name in sorted(set(cpool.leftovers(self.node, self.runc.list_ids(), keep)
                               + cpool.leftovers(self.node, netns.list_names(), keep)
                               + cpool.leftovers(self.node, homes, keep))):
            self._discard(cpool.Pooled(name, nf_pool.Entry(name, ()), self.dir / "cpool" / name))
            removed.append(f"pooled container {name}")
        return removed


class Gate:
    """One decision, taken once by one thread (the first one counts), waited for by
    another: go (True) or not (False)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._go = False

    def decide(self, go: bool) -> None:
        if not self._event.is_set():
            self._go = go
            self._event.set()

    def wait(self, timeout: float) -> bool:
        """The decision; False if none came within `timeout` seconds."""
        return self._event.wait(timeout) and self._go


def _idle(image_config: dict[str, Any]) -> bool:
    """Whether the image's process is the catalogue's idle one (oci.layout.IDLE_CMD)."""
    process = image_config.get("config") or {}
    return not process.get("Entrypoint") and process.get("Cmd") == IDLE_CMD


def write_spec(cdir: Path, cfg: dict[str, Any]) -> None:
    """config.json in `cdir`: a fresh file, renamed into place, never through whatever the
    path holds."""
    tmp = cdir / f".config.json.{os.getpid()}.{threading.get_native_id()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(cfg, indent=1))
    os.replace(tmp, cdir / "config.json")
