"""The container compute driver: an NF is an OCI image run by runc in the NF's network
namespace (the Glasgow paper's container NFs; the NNF paper's "docker" flavour, section III).

It keeps the native driver's contract and most of its machinery (netfate.drivers.native):
the same namespace, veth ports, cgroup v1 path and limits, records, config and state files,
so an NF's exported state imports into either flavour. What differs:

- create unpacks the NF's image (verified, netfate.oci) once per image and runs a container
  on it with runc: read-only root, the descriptor's Linux capabilities only, its own PID,
  mount, IPC and UTS namespaces, the NF's network namespace by path (container_spec);
- the lifecycle scripts run inside the container (`runc exec`), with the native inputs
  (environment and files), the paths as the container sees them;
- pause is `runc pause` (the freezer), start after a pause `runc resume`;
- a crash of the container's process, or of a daemon a script started in it, shows as the NF
  being stopped (as for native daemons); start runs it again.

The image: an OCI image layout shipped in the bundle under ``image/`` (imported into the
node's store, verified), else the store's ``<nf>-<version>`` (`netfate images build`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from netfate.bundle import Bundle, BundleStore
from netfate.drivers import cgroups, container_procs, container_spec
from netfate.drivers.native import NativeCompute
from netfate.drivers.nf_script import SCRIPT_TIMEOUT, script_env
from netfate.drivers.runc import Runc, container_id
from netfate.errors import DriverError, InvalidInput
from netfate.interfaces import ComputeContext, NFInfo
from netfate.oci.store import DISK_BUDGET_MB, ImageStore, image_tag

IN_PYTHON = "/usr/bin/python3"  # in the catalogue's images
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_REDIRECT = 'exec "$0" </dev/null >"$1" 2>"$2"'  # a fixed program; the paths are arguments


class ContainerCompute(NativeCompute):
    """Table II for container NFs on one node."""

    flavour = "container"

    def __init__(self, node: str, rundir: Path, store: BundleStore, mtu: int = 1500,
                 script_timeout: float = SCRIPT_TIMEOUT,
                 disk_budget_mb: int = DISK_BUDGET_MB) -> None:
        # Scripts run inside the container (runc exec): never the in-process fast path.
        super().__init__(node, rundir, store, mtu=mtu, script_timeout=script_timeout,
                         fast_path=False)
        self.images = ImageStore(rundir / "images", disk_budget_mb * 1024 * 1024)
        self.runc = Runc(rundir / "runc")

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
                   script_timeout=ctx.script_timeout)

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

    def _provision(self, info: NFInfo, bundle: Bundle, undo: list[Callable[[], object]]) -> None:
        desc = bundle.descriptor
        tag = self.image_for(bundle)
        rootfs = self.images.rootfs(tag)
        process = self.images.config(tag).get("config") or {}
        args = [*(process.get("Entrypoint") or []), *(process.get("Cmd") or [])]
        if not args or not all(isinstance(a, str) for a in args):
            raise InvalidInput(f"image {tag} names no process to run (Entrypoint/Cmd)")
        env = [e for e in process.get("Env") or [] if isinstance(e, str)] or [f"PATH={_PATH}"]
        iid = info.instance_id
        cdir = self._cdir(iid)
        cdir.mkdir(parents=True, exist_ok=True)
        undo.append(lambda: shutil.rmtree(cdir, ignore_errors=True))
        cfg = container_spec.spec(
            rootfs=rootfs, args=args, env=env, hostname=iid[:63], netns=info.netns or "",
            cgroup=iid, memory_mb=desc.resources.memory_mb,
            cpu_percent=desc.resources.cpu_percent, capabilities=list(desc.linux_capabilities),
            bundle_dir=bundle.root, nf_dir=self._idir(iid), notify_dir=self.queue.root,
            cache_dir=self._cache_dir(bundle))
        # A fresh file, renamed into place: never through whatever the path holds.
        tmp = cdir / f".config.json.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(cfg, indent=1))
        os.replace(tmp, cdir / "config.json")
        cid = container_id(iid)
        undo.append(lambda: self.runc.delete(cid))
        self.runc.run(cid, cdir, self._idir(iid) / "run" / "container.log")
        info.detail = {"image": tag, "image_digest": self.images.resolve(tag).digest,
                       "container": cid}

    def _freeze(self, instance_id: str, frozen: bool) -> None:
        cid = container_id(instance_id)
        if self.runc.state(cid) is None:
            return
        if frozen:
            self.runc.pause(cid)
        else:
            self.runc.resume(cid)

    def _revive(self, info: NFInfo) -> None:
        """Run the container again if its process is gone (a crash): a stopped container
        is deleted and run anew, in the same namespace, with the same spec."""
        cid = container_id(info.instance_id)
        state = self.runc.state(cid)
        if state is not None and state.get("status") in ("running", "paused"):
            return
        if state is not None:
            self.runc.delete(cid)
        self.runc.run(cid, self._cdir(info.instance_id),
                      self._idir(info.instance_id) / "run" / "container.log")

    def _teardown(self, info: NFInfo) -> None:
        self.runc.delete(container_id(info.instance_id))
        shutil.rmtree(self._cdir(info.instance_id), ignore_errors=True)

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
        d = self._idir(info.instance_id)
        env = script_env(info, bundle, action, d, self.queue.root, self._cache_dir(bundle),
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
        out_path, err_path = d / "run" / f".{action}.out", d / "run" / f".{action}.err"
        argv = self.runc.exec_argv(container_id(info.instance_id), [
            "/bin/sh", "-c", _REDIRECT, f"{container_spec.IN_BUNDLE}/scripts/{action}",
            container_spec.inside(str(out_path), d), container_spec.inside(str(err_path), d),
        ], env, container_spec.IN_DIR)
        limit = self.script_timeout if timeout is None else timeout
        try:
            cp = subprocess.run(argv, stdin=subprocess.DEVNULL,  # noqa: S603 - fixed argv
                                capture_output=True, timeout=limit, check=False)
            stdout = out_path.read_bytes() if out_path.exists() else b""
            stderr = (err_path.read_bytes() if err_path.exists() else b"") + cp.stderr
        except subprocess.TimeoutExpired:
            raise DriverError(f"{info.instance_id}: {action} script timed out after "
                              f"{limit}s") from None
        finally:
            out_path.unlink(missing_ok=True)
            err_path.unlink(missing_ok=True)
        if cp.returncode != 0:
            msg = stderr.decode(errors="replace").strip()[-2000:]
            raise DriverError(f"{info.instance_id}: {action} failed (exit {cp.returncode}): "
                              f"{msg}")
        return stdout.decode(errors="replace")

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
        """Remove this node's containers with no record, then what native's collection
        removes (namespaces, cgroups and directories no flavour has a record for)."""
        known = {container_id(i.instance_id) for i in self.records.all_flavours()}
        prefix = container_id(f"{self.node}-")
        removed = []
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
