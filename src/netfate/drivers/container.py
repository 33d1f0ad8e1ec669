"""The container compute driver: an NF is an OCI image run by runc in the NF's network
namespace (the Glasgow paper's container NFs; the NNF paper's "docker" flavour, section III).

It keeps the native driver's contract and most of its machinery (netfate.drivers.native):
the same namespace, veth ports, cgroup v1 path and limits, records, config and state files,
so an NF's exported state imports into either flavour. What differs:

- create unpacks the NF's image (verified, netfate.oci) once per image and runs a container
  on it with runc: read-only root, the descriptor's Linux capabilities only, its own PID,
  mount, IPC and UTS namespaces, the NF's network namespace by path (container_spec);
- the lifecycle scripts run inside the container (`runc exec`), with the native inputs
  (environment and files), the paths as the container sees them; the catalogue firewall's
  actions run in-process in the container's network namespace instead (netfate.drivers.
  nf_inproc, as for native NFs: the same kernel state and files, without a runc exec and a
  bash per action), with its scripts inside the container as the fallback;
- the NF is born into a pre-made container (`runc create` done ahead in a pre-made
  namespace with its ports) when the node keeps a pool (`compute.nf_pool_size`;
  netfate.drivers.container_pool and container_pooling), adopted beside the rest of create
  and started with `runc start`;
- pause is `runc pause` (the freezer), start after a pause `runc resume`;
- a crash of the container's process, or of a daemon a script started in it, shows as the NF
  being stopped (as for native daemons); start runs it again.

The image: an OCI image layout shipped in the bundle under ``image/`` (imported into the
node's store, verified), else the store's ``<nf>-<version>`` (`netfate images build`).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from netfate.bundle import Bundle, BundleStore
from netfate.drivers import cgroups, container_procs, container_spec, nf_files
from netfate.drivers import container_pool as cpool
from netfate.drivers.container_pooling import PooledContainers, write_spec
from netfate.drivers.nf_inproc import Call
from netfate.drivers.nf_script import SCRIPT_TIMEOUT, script_env, script_failed
from netfate.drivers.node_files import paths as node_files
from netfate.drivers.runc import Runc, container_id
from netfate.errors import DriverError, InvalidInput
from netfate.interfaces import ComputeContext, NFInfo
from netfate.oci.store import DISK_BUDGET_MB, ImageStore, image_tag

IN_PYTHON = "/usr/bin/python3"  # in the catalogue's images
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_REDIRECT = 'exec "$0" </dev/null >"$1" 2>"$2"'  # a fixed program; the paths are arguments
log = logging.getLogger(__name__)


class ContainerCompute(PooledContainers):
    """Table II for container NFs on one node."""

    flavour = "container"
    pool_tag = "cpool"  # its namespace pool's entries are apart from the native driver's

    def __init__(self, node: str, rundir: Path, store: BundleStore, mtu: int = 1500,
                 script_timeout: float = SCRIPT_TIMEOUT,
                 disk_budget_mb: int = DISK_BUDGET_MB, fast_path: bool = True,
                 pool_size: int = 0) -> None:
        """``fast_path``: the catalogue firewall's actions in-process (else every action is
        its script, inside the container). ``pool_size``: pre-made namespaces per port
        layout (nf_pool), kept apart from the native driver's."""
        super().__init__(node, rundir, store, mtu=mtu, script_timeout=script_timeout,
                         fast_path=fast_path, pool_size=pool_size)
        self.images = ImageStore(rundir / "images", disk_budget_mb * 1024 * 1024)
        self.runc = Runc(rundir / "runc")
        self._cpools: dict[tuple[str, tuple[str, ...]], cpool.ContainerPool] = {}
        # instance id -> its pre-made container, and its adoption under way
        self._adopting: dict[str, tuple[cpool.Pooled, Future[None]]] = {}
        self._adopt_pool: ThreadPoolExecutor | None = None

    @classmethod
    def from_context(cls, ctx: ComputeContext) -> ContainerCompute:
        """The factory the `netfate.compute` entry point `container` names. DriverError if
        runc, umoci or cgroup v1 are missing: the node then does not host (advertise) it."""
        missing = [t for t in ("runc", "umoci") if shutil.which(t, path=_PATH) is None]
        if missing:
            raise DriverError(f"the container flavour needs {' and '.join(missing)}")
        if not cgroups.available():
            raise DriverError("the container flavour needs cgroup v1 (memory, cpu, freezer)")
        return cls(ctx.node, ctx.rundir, ctx.store, mtu=ctx.mtu,
                   script_timeout=ctx.script_timeout, pool_size=ctx.nf_pool_size)

    # -- the image and the container ------------------------------------------------------
    def image_for(self, bundle: Bundle) -> str:
        """The store tag of the bundle's image: its own OCI layout (``image/``), imported and
        verified, else ``<nf>-<version>``. NotFound if the store has neither."""
        desc = bundle.descriptor
        own = bundle.root / "image"
        if (own / "index.json").is_file():
            tag = f"bundle-{bundle.sha256[:32]}"
            if not self.images.has(tag):
                self.images.import_image(own, tag)
            return tag
        tag = image_tag(desc.name, desc.version)
        self.images.resolve(tag)
        return tag

    def _cdir(self, instance_id: str) -> Path:
        """The container's runc bundle (its config.json): beside the instance directory, never
        in it. /nf/dir is bound read-write into the container, so a spec there could be
        rewritten by the NF (host mounts, capabilities) and would apply at its next run."""
        return self.dir / "runc-bundles" / instance_id

    def _nf_cache(self, instance_id: str) -> Path:
        """The container's own cache, bound at /nf/cache: not the bundle's cache shared by
        native instances, so one container can neither read another's artefacts nor plant a
        poisoned one for it (a compiled ruleset, say)."""
        d = self.dir / "nf-cache" / instance_id
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _spec(self, bundle: Bundle, tag: str, *, hostname: str, netns: str, cgroup: str,
              nf_dir: Path, notify_dir: Path, cache_dir: Path,
              node_files: list[str] | None = None) -> dict[str, Any]:
        """The runc spec of a container of `bundle`'s image `tag` (container_spec), with the
        device nodes its kernel capabilities need and `node_files` bound read-only."""
        desc = bundle.descriptor
        rootfs = self.images.rootfs(tag)
        process = self.images.config(tag).get("config") or {}
        args = [*(process.get("Entrypoint") or []), *(process.get("Cmd") or [])]
        if not args or not all(isinstance(a, str) for a in args):
            raise InvalidInput(f"image {tag} names no process to run (Entrypoint/Cmd)")
        env = [e for e in process.get("Env") or [] if isinstance(e, str)] or [f"PATH={_PATH}"]
        return container_spec.spec(
            rootfs=rootfs, args=args, env=env, hostname=hostname, netns=netns,
            cgroup=cgroup, memory_mb=desc.resources.memory_mb,
            cpu_percent=desc.resources.cpu_percent, capabilities=list(desc.linux_capabilities),
            bundle_dir=bundle.root, nf_dir=nf_dir, notify_dir=notify_dir,
            cache_dir=cache_dir, sysctl=dict(desc.sysctls), devices=desc.capabilities,
            node_files=node_files)

    def _provision(self, info: NFInfo, bundle: Bundle, undo: list[Callable[[], object]]) -> None:
        iid = info.instance_id
        cid = container_id(iid)
        with self._guard:
            adopting = self._adopting.get(iid)
        if adopting is not None:  # born into a pre-made container: it takes the NF's identity
            pooled = adopting[0]  # (its adoption and start, begun in _take_entry, go on)
            info.detail = {"image": pooled.image, "image_digest": pooled.digest,
                           "container": cid}
            return
        tag = self.image_for(bundle)
        cdir = self._cdir(iid)
        cdir.mkdir(parents=True, exist_ok=True)
        undo.append(lambda: shutil.rmtree(cdir, ignore_errors=True))
        try:
            cfg = self._spec(bundle, tag, hostname=iid[:63], netns=info.netns or "",
                             cgroup=iid, nf_dir=self._idir(iid),
                             notify_dir=self.queue.for_nf(iid).root,
                             cache_dir=self._nf_cache(iid),
                             node_files=node_files(bundle, info.config))
        except ValueError as exc:
            raise InvalidInput(f"{iid}: {exc}") from None
        write_spec(cdir, cfg)
        undo.append(lambda: self.runc.delete(cid))
        self.runc.run(cid, cdir, self._idir(iid) / "run" / "container.log")
        info.detail = {"image": tag, "image_digest": self.images.resolve(tag).digest,
                       "container": cid}

    def _freeze(self, instance_id: str, frozen: bool) -> None:
        cid = container_id(instance_id)
        if not (self.runc.root / cid).is_dir():
            return  # runc knows no such container (read without running runc)
        if frozen:
            self.runc.pause(cid)
        elif cgroups.freezer_state(instance_id) != "THAWED":
            # Only a paused container is resumed: every delete thaws first, and asking runc
            # (`runc state`, then `runc resume`) cost ~15 ms for a container never paused.
            self.runc.resume(cid)

    def _revive(self, info: NFInfo) -> None:
        """Run the container again if its process is gone (a crash): a stopped container
        is deleted and run anew, in the same namespace, with the same spec."""
        from netfate.supervisor import Record, ours

        cid = container_id(info.instance_id)
        pid = self.runc.init_pid(cid)  # runc's state file, without running runc (~20 ms)
        if pid is not None and ours(Record(pid[0], pid[1])):
            return  # its process runs (or is frozen): running or paused
        if (self.runc.root / cid).exists():
            self.runc.delete(cid)
        self.runc.run(cid, self._cdir(info.instance_id),
                      self._idir(info.instance_id) / "run" / "container.log")

    def _teardown(self, info: NFInfo) -> None:
        self.runc.delete(container_id(info.instance_id))
        shutil.rmtree(self._cdir(info.instance_id), ignore_errors=True)
        self.queue.remove_nf(info.instance_id)  # what it still queued is forwarded
        shutil.rmtree(self.dir / "nf-cache" / info.instance_id, ignore_errors=True)

    # -- scripts inside the container -----------------------------------------------------
    def _run_script(self, info: NFInfo, bundle: Bundle, action: str,
                    extra_env: dict[str, str] | None = None,
                    timeout: float | None = None) -> str:
        """Run ``action``'s script inside the container (runc exec), with the native inputs
        as the container sees them; "" if the bundle has no such script. DriverError on a
        non-zero exit or a timeout (with the tail of its stderr)."""
        script = bundle.script(action)
        if script is None:
            return ""
        if self._inproc(info, bundle, action, extra_env):
            return ""
        self._adopted(info.instance_id)  # a pre-made container: runs before its first exec
        d = self._idir(info.instance_id)
        env = script_env(info, bundle, action, d, self.queue.for_nf(info.instance_id).root,
                         self._nf_cache(info.instance_id),
                         {k: container_spec.inside(v, d) for k, v in (extra_env or {}).items()})
        env.pop("NF_CGROUP_PROCS", None)  # runc exec joins the container's cgroups itself
        env.update({"NF_DIR": container_spec.IN_DIR,
                    "NF_BUNDLE_DIR": container_spec.IN_BUNDLE,
                    "NF_CONFIG": f"{container_spec.IN_DIR}/config.json",
                    "NF_STATE_DIR": f"{container_spec.IN_DIR}/state",
                    "NF_RUN_DIR": f"{container_spec.IN_DIR}/run",
                    "NF_NOTIFY_DIR": container_spec.IN_NOTIFY,
                    "NF_CACHE_DIR": container_spec.IN_CACHE,
                    "NF_PYTHON": IN_PYTHON, "PATH": _PATH, "TMPDIR": "/tmp"})
        # The script's output goes to files inside the container: a daemon it leaves running
        # inherits them, and runc (non-detached) would otherwise copy its stdio pipes until
        # that daemon exits.
        # The container writes them, so it can put a symlink (to a host file) or a FIFO in
        # their place: they are read without following links, bounded (nf_files).
        out_rel, err_rel = f"run/.{action}.out", f"run/.{action}.err"
        argv = self.runc.exec_argv(container_id(info.instance_id), [
            "/bin/sh", "-c", _REDIRECT, f"{container_spec.IN_BUNDLE}/scripts/{action}",
            f"{container_spec.IN_DIR}/{out_rel}", f"{container_spec.IN_DIR}/{err_rel}",
        ], env, container_spec.IN_DIR)
        limit = self.script_timeout if timeout is None else timeout
        try:
            cp = subprocess.run(argv, stdin=subprocess.DEVNULL,  # noqa: S603 - fixed argv
                                capture_output=True, timeout=limit, check=False)
            stderr = (nf_files.read(d, err_rel, limit=nf_files.MAX_STDERR, tail=True)
                      or b"") + cp.stderr[-nf_files.MAX_STDERR:]
            stdout = nf_files.read(d, out_rel, limit=nf_files.MAX_OUTPUT) or b""
        except subprocess.TimeoutExpired:
            raise DriverError(f"{info.instance_id}: {action} script timed out after "
                              f"{limit}s") from None
        except OSError as exc:  # UnsafeFile: a link or a FIFO in the output's place
            raise DriverError(f"{info.instance_id}: {action}'s output: {exc}") from None
        finally:
            nf_files.unlink(d, out_rel)
            nf_files.unlink(d, err_rel)
        if cp.returncode != 0:
            raise script_failed(info.instance_id, action, cp.returncode,
                                stderr.decode(errors="replace"))
        return stdout.decode(errors="replace")

    def _inproc(self, info: NFInfo, bundle: Bundle, action: str,
                extra_env: dict[str, str] | None) -> bool:
        """Do the action in-process in the container's network namespace (nf_inproc) if the
        runner serves this bundle and action; False if not or if it failed (then the script
        runs inside the container and does the same, idempotently). The files are the ones
        the container sees at /nf/dir (a bind mount of the instance directory)."""
        ports = tuple(p.name for p in info.ports)
        if self.inproc is None or not info.netns or not self.inproc.handles(
                bundle.sha256, action, ports):
            return False
        extra = extra_env or {}
        state_file = extra.get("NF_EXPORT_FILE") or extra.get("NF_IMPORT_FILE")
        call = Call(action, info.netns, ports, self._idir(info.instance_id),
                    self._cache_dir(bundle), resume=bool(extra.get("NF_RESUME")),
                    state_file=Path(state_file) if state_file else None)
        try:
            self.inproc.run(call)
        except Exception as exc:
            log.warning("%s: in-process %s failed (%s); running the script in the container",
                        info.instance_id, action, exc)
            return False
        return True

    # -- crash detection, status, garbage -------------------------------------------------
    def _dead(self, instance_id: str) -> list[str]:
        """What of the NF died: "container" if its own process is gone, and the daemons its
        scripts started (PID files hold PIDs of the container's PID namespace)."""
        from netfate.supervisor import Record, ours

        pid = self.runc.init_pid(container_id(instance_id))
        if pid is None or not ours(Record(pid[0], pid[1])):
            return ["container"]
        return container_procs.dead_daemons(self._idir(instance_id) / "run", instance_id)

    def status(self, instance_id: str) -> NFInfo:
        info = super().status(instance_id)
        state = self.runc.state(container_id(instance_id))
        info.detail["container_status"] = (state or {}).get("status", "absent")
        dead = self._dead(instance_id)
        if dead:
            info.detail["dead"] = dead
        return info

    def collect_garbage(self) -> list[str]:
        """Remove pre-made containers no live pool holds (of an ended process), this node's
        containers with no record, then what native's collection removes (namespaces,
        cgroups and directories no flavour has a record for)."""
        removed = self._pool_garbage()
        known = {container_id(i.instance_id) for i in self.records.all_flavours()}
        prefix = container_id(f"{self.node}-")
        for cid in self.runc.list_ids():
            if cid.startswith(prefix) and cid not in known:
                with contextlib.suppress(DriverError):
                    self.runc.delete(cid)
                    removed.append(f"container {cid}")
        bundles = self.dir / "runc-bundles"
        iids = {i.instance_id for i in self.records.all_flavours()}
        for d in sorted(bundles.iterdir()) if bundles.is_dir() else []:
            if d.name not in iids:
                shutil.rmtree(d, ignore_errors=True)
                removed.append(f"runc bundle {d.name}")
        return removed + super().collect_garbage()

