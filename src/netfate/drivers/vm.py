"""The VM compute driver: an NF runs in its own QEMU guest (Debian's kernel and the project's
initramfs: netfate.drivers.vm_image), its ports tap devices that join the LSI, its lifecycle
through QMP, and its lifecycle scripts run inside the guest through qemu-guest-agent
(guest-exec over virtio-serial). NetFATE's NFs are VMs (Xen there, QEMU/TCG here); the NNF
paper's VM flavour (section III, Table IV) is the same idea.

The scripts are the native flavour's, unchanged: the bundle is copied into the guest at
/nf/bundle, and they get the same environment (NF_*), with guest paths. Pause freezes the
whole guest (QMP stop), as the cgroup freezer does a native NF. State export/import speaks the
flavour-independent netfate-state/1 document (netfate.drivers.nf_state). Live migration
(netfate.drivers.vm_migrate) moves the running guest to another node's QEMU.

Idempotent operations; create_nf rolls back (QEMU process, taps, files) if a step fails.
A QEMU that exits by itself (a crash) is reported: the NF shows as stopped with
detail.vm = "exited", and a notification is queued.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netfate import naming
from netfate.bundle import Bundle, BundleStore
from netfate.drivers import (
    capabilities,
    nf_state,
    node_files,
    vm_guest,
    vm_image,
    vm_migrate,
    vm_qemu,
    vm_template,
)
from netfate.drivers.create_checks import check_create, owners_config, taken
from netfate.drivers.nf_records import InstanceRecords
from netfate.drivers.nf_script import SCRIPT_TIMEOUT
from netfate.drivers.vm_qmp import GuestAgent, Qmp
from netfate.errors import Conflict, DriverError, NotFound
from netfate.interfaces import ComputeContext, NFInfo, NFPort, NFState
from netfate.queue import NotificationQueue

# MB a guest gets whatever the NF's figure: its initramfs (15 MB) unpacks into RAM (39 MB);
# 128 failed to ("Initramfs unpacking failed") once it carried strongSwan.
VM_MEMORY_MB = 160
BOOT_TIMEOUT = 90.0  # s until the guest agent answers (TCG on a busy 2-core host is slow)
RESTORE_TIMEOUT = 45.0  # s for a guest resumed from its template to answer

class VmCompute:
    """Table II for VM NFs on one node."""

    flavour = "vm"
    live_migrate = True  # the orchestrator may move these NFs with migrate_live (vm_migrate)

    def __init__(self, node: str, rundir: Path, store: BundleStore, mtu: int = 1500,
                 script_timeout: float = SCRIPT_TIMEOUT,
                 image_cache: Path = vm_image.DEFAULT_CACHE, templates: bool = True) -> None:
        self.node = naming.check_node_name(node)
        self.templates = templates  # start guests from a saved template (vm_template)
        self.mtu = mtu
        self.script_timeout = script_timeout
        self.image_cache = image_cache
        self.dir = rundir / "nodes" / node
        self.vms_dir = self.dir / "vms"
        self.records = InstanceRecords(self.node, self.vms_dir)
        self.queue = NotificationQueue(self.dir / "vm-queue")
        self.store = store
        self._caps: set[str] | None = None
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @classmethod
    def from_context(cls, ctx: ComputeContext) -> VmCompute:
        """The `netfate.compute` entry point `vm`. DriverError when QEMU or the guest image
        is missing: the node then does not advertise the flavour."""
        if not Path(vm_qemu.QEMU).is_file():
            raise DriverError(f"{vm_qemu.QEMU} is missing (install qemu-system-x86)")
        vm_image.load()
        return cls(ctx.node, ctx.rundir, ctx.store, mtu=ctx.mtu,
                   script_timeout=ctx.script_timeout)

    # -- bookkeeping ----------------------------------------------------------------------
    @property
    def capabilities(self) -> set[str]:
        if self._caps is None:  # the guest carries the host's tools (vm_image.TOOLS)
            self._caps = capabilities.functional()
        return self._caps

    def _lock(self, iid: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(iid, threading.Lock())

    def _idir(self, iid: str) -> Path:
        return self.records.dir(iid)

    def _bundle(self, info: NFInfo) -> Bundle:
        return self.store.get(info.bundle_sha256)

    def _qmp(self, iid: str) -> Qmp:
        return Qmp(self._idir(iid) / "qmp.sock")

    def _agent(self, iid: str) -> GuestAgent:
        ga = GuestAgent(self._idir(iid) / "qga.sock", timeout=max(30.0, self.script_timeout))
        ga.sync(BOOT_TIMEOUT)
        return ga

    # -- the guest ------------------------------------------------------------------------
    def _run_script(self, info: NFInfo, bundle: Bundle, action: str,
                    extra: dict[str, str] | None = None, timeout: float | None = None) -> str:
        """Run ``action``'s script in the guest (vm_guest.run_script); "" if none."""
        return vm_guest.run_script(self._agent(info.instance_id), info, bundle, action, extra,
                                   self.script_timeout if timeout is None else timeout)

    def _cache_dir(self, bundle: Bundle) -> Path:
        """The node's cache for the bundle: the native driver's (same scripts, same keys)."""
        return self.dir / "cache" / bundle.sha256

    def _provision(self, info: NFInfo, bundle: Bundle) -> None:
        vm_guest.provision(self._agent(info.instance_id), info, bundle, self._cache_dir(bundle),
                           node_files.read(bundle, info.config))

    def _push_config(self, info: NFInfo) -> None:
        vm_guest.push_config(self._agent(info.instance_id), info,
                             node_files.read(self._bundle(info), info.config))

    def _boot(self, info: NFInfo, incoming: str | None = None) -> None:
        """Start the NF's QEMU on its taps: waiting on ``incoming`` for a migration, else
        resumed from the guest template (vm_template; built first if there is none), else
        (templates off, or the template fails) booted."""
        d = self._idir(info.instance_id)
        spec = vm_qemu.load_spec(d)
        macs = spec.get("macs") if isinstance(spec.get("macs"), dict) else {}
        assert isinstance(macs, dict)
        ports = [(p.name, p.host_if, str(macs[p.name])) for p in info.ports]
        image = vm_image.load(self.image_cache)
        memory = int(str(spec.get("memory_mb", VM_MEMORY_MB)))
        name = f"fate-{info.instance_id}"
        (d / "crash-reported").unlink(missing_ok=True)
        if incoming is None and self.templates:
            try:
                vm_template.restore(d, self.image_cache, image, name, ports, memory,
                                    self.mtu, BOOT_TIMEOUT, RESTORE_TIMEOUT)
                return
            except DriverError as exc:  # booting still works: say why, and boot
                vm_qemu.stop(d)
                (d / "template-error").write_text(f"{exc}\n")
        vm_qemu.start(d, vm_qemu.argv(d, image, name, ports, memory, mtu=self.mtu,
                                      incoming=incoming))

    # -- Table II -------------------------------------------------------------------------
    def create_nf(self, node: str, owner: str, name: str, bundle_sha256: str,
                  config: dict[str, Any], on_ports: Callable[[NFInfo], None] | None = None
                  ) -> NFInfo:
        bundle, cfg, iid = self._check_create(node, owner, name, bundle_sha256, config)
        with self._lock(iid):
            with contextlib.suppress(NotFound):
                existing = self.records.load(iid)
                if (existing.owner, existing.name, existing.bundle_sha256, existing.config) \
                        == (owner, name, bundle.sha256, cfg):
                    return existing  # idempotent re-apply (never another owner's NF)
                raise taken(existing, owner, name)
            node_files.read(bundle, cfg)  # a key file missing or too big: refused, no VM made
            return self._create(iid, owner, name, bundle, cfg, None, on_ports)

    def _check_create(self, node: str, owner: str, name: str, bundle_sha256: str,
                      config: dict[str, Any]) -> tuple[Bundle, dict[str, Any], str]:
        return check_create(self.node, self.flavour, self.capabilities, self.store, node,
                            owner, name, bundle_sha256, config)

    def _create(self, iid: str, owner: str, name: str, bundle: Bundle, cfg: dict[str, Any],
                incoming: dict[str, Any] | None, on_ports: Callable[[NFInfo], None] | None = None
                ) -> NFInfo:
        """Make the VM; with ``incoming`` (uri, macs) wait for a migration instead of booting
        and running the create script. ``on_ports``: create_nf's, once the taps exist."""
        desc = bundle.descriptor
        ports = [NFPort(p.name, naming.nf_port(iid, p.name)) for p in desc.ports]
        info = NFInfo(instance_id=iid, node=self.node, owner=owner, name=name,
                      flavour=self.flavour, bundle_sha256=bundle.sha256,
                      state=NFState.CREATED, ports=ports, config=cfg)
        d = self._idir(iid)
        undo: list[Callable[[], object]] = []
        try:
            d.mkdir(parents=True)
            undo.append(lambda: shutil.rmtree(d, ignore_errors=True))
            undo.append(lambda: self.records.forget(iid))
            self.queue.ensure()
            (d / "config.json").write_text(json.dumps(cfg))
            macs = dict(incoming["macs"]) if incoming else {
                p.name: vm_qemu.port_mac(iid, p.name) for p in ports}
            vm_qemu.save_spec(d, {"macs": macs, "memory_mb": max(VM_MEMORY_MB,
                                                                 desc.resources.memory_mb)})
            for p in ports:
                undo.append(functools.partial(vm_qemu.tap_delete, p.host_if))
                vm_qemu.tap_create(p.host_if, self.mtu)
            if on_ports is not None:
                on_ports(info)
            undo.append(lambda: vm_qemu.stop(d))
            self._boot(info, incoming["uri"] if incoming else None)
            info.detail = {"incoming": incoming["uri"]} if incoming else {}
            self.records.save(info)
            if incoming is None:
                self._provision(info, bundle)
                self._run_script(info, bundle, "create")
                with contextlib.suppress(DriverError, OSError):
                    vm_guest.pull_cache(self._agent(iid), self._cache_dir(bundle))
        except BaseException:
            for step in reversed(undo):
                with contextlib.suppress(Exception):
                    step()
            raise
        return info

    def start_nf(self, instance_id: str) -> NFInfo:
        with self._lock(instance_id):
            info = self.records.load(instance_id)
            if info.detail.get("incoming") or info.detail.get("migrated_to"):
                # A guest on its way here (finish_incoming records it), or gone elsewhere
                # (the orchestrator releases this one): nothing to start.
                return info
            d = self._idir(instance_id)
            if vm_qemu.running(d) is None:  # it crashed (or the node restarted): boot again
                self._boot(info)
                self._provision(info, self._bundle(info))
                self._run_script(info, self._bundle(info), "create")
                info.state = NFState.CREATED
            elif info.state == NFState.RUNNING:
                return info
            extra = {}
            if info.state == NFState.PAUSED:
                self._qmp(instance_id).execute("cont")
                extra["NF_RESUME"] = "1"
            self._run_script(info, self._bundle(info), "start", extra)
            info.state = NFState.RUNNING
            info.own_macs = vm_guest.own_macs(self._agent(instance_id),
                                              {p.name for p in info.ports})
            info.detail = {}
            self.records.save(info)
            return info

    def stop_nf(self, instance_id: str) -> NFInfo:
        with self._lock(instance_id):
            info = self.records.load(instance_id)
            if info.state in (NFState.STOPPED, NFState.CREATED) or info.detail.get("incoming"):
                return info
            if vm_qemu.running(self._idir(instance_id)) is not None:
                if info.state == NFState.PAUSED:
                    self._qmp(instance_id).execute("cont")
                self._run_script(info, self._bundle(info), "stop")
            info.state = NFState.STOPPED
            self.records.save(info)
            return info

    def pause_nf(self, instance_id: str) -> NFInfo:
        with self._lock(instance_id):
            info = self.records.load(instance_id)
            if info.state == NFState.PAUSED:
                return info
            if info.detail.get("incoming"):
                raise Conflict(f"{instance_id} is migrating here; pause it once it arrived")
            if info.state != NFState.RUNNING or self._crashed(info):
                raise Conflict(f"{instance_id} is {info.state}; only a running NF can be paused")
            self._run_script(info, self._bundle(info), "pause")
            self._qmp(instance_id).execute("stop")  # the whole guest freezes
            info.state = NFState.PAUSED
            self.records.save(info)
            return info

    def update_nf(self, instance_id: str, config: dict[str, Any]) -> NFInfo:
        with self._lock(instance_id):
            info = self.records.load(instance_id)
            if info.detail.get("incoming") or info.detail.get("migrated_to"):
                raise Conflict(f"{instance_id} is migrating; update it where it arrives")
            bundle = self._bundle(info)
            cfg = owners_config(bundle.descriptor, info.owner, config)
            old = info.config
            info.config = cfg
            try:
                if vm_qemu.running(self._idir(instance_id)) is not None:
                    self._push_config(info)
                    if info.state == NFState.RUNNING:
                        self._run_script(info, bundle, "update")
            except BaseException:
                info.config = old
                with contextlib.suppress(Exception):
                    self._push_config(info)
                raise
            (self._idir(instance_id) / "config.json").write_text(json.dumps(cfg))
            self.records.save(info)
            return info

    def delete_nf(self, instance_id: str) -> None:
        with self._lock(instance_id):
            try:
                info = self.records.load(instance_id)
            except NotFound:
                return
            d = self._idir(instance_id)
            if vm_qemu.running(d) is not None and not (info.detail.get("migrated_to") or
                                                        info.detail.get("incoming")):
                # The guest goes away with everything in it; its scripts get their say
                # (the native contract) but cannot keep it.
                with contextlib.suppress(Exception):
                    if info.state == NFState.PAUSED:
                        self._qmp(instance_id).execute("cont")
                    bundle = self._bundle(info)
                    for action in ("stop", "delete") if info.state != NFState.CREATED \
                            else ("delete",):
                        self._run_script(info, bundle, action, timeout=10)
            vm_qemu.stop(d)
            for p in info.ports:
                vm_qemu.tap_delete(p.host_if)
            shutil.rmtree(d, ignore_errors=True)
            self.records.forget(instance_id)
        with self._guard:
            self._locks.pop(instance_id, None)

    # -- state ----------------------------------------------------------------------------
    def _runner(self, info: NFInfo) -> nf_state.RunScript:
        (self._idir(info.instance_id) / "run").mkdir(exist_ok=True)
        return vm_guest.state_runner(lambda: self._agent(info.instance_id), info,
                                     self._bundle(info), self.script_timeout)

    def export_state(self, instance_id: str) -> dict[str, Any]:
        with self._lock(instance_id):
            info = self.records.load(instance_id)
            return nf_state.export_state(info, self._bundle(info), self._idir(instance_id),
                                         self._runner(info))

    def import_state(self, instance_id: str, state: dict[str, Any]) -> None:
        with self._lock(instance_id):
            info = self.records.load(instance_id)
            (self._idir(instance_id) / "run").mkdir(exist_ok=True)
            nf_state.import_state(info, self._bundle(info), self._idir(instance_id), state,
                                  self._runner(info))
            self.records.save(info)

    # -- live migration (netfate.drivers.vm_migrate) ---------------------------------------
    def migration_spec(self, instance_id: str) -> dict[str, Any]:
        return vm_migrate.migration_spec(self, instance_id)

    def prepare_incoming(self, spec: dict[str, Any], host: str = "127.0.0.1") -> NFInfo:
        return vm_migrate.prepare_incoming(self, spec, host)

    def migrate_out(self, instance_id: str, uri: str,
                    timeout: float = vm_migrate.MIGRATE_TIMEOUT) -> dict[str, Any]:
        return vm_migrate.migrate_out(self, instance_id, uri, timeout)

    def finish_incoming(self, instance_id: str, state: str = "running") -> NFInfo:
        return vm_migrate.finish_incoming(self, instance_id, state)

    # -- reports --------------------------------------------------------------------------
    def _crashed(self, info: NFInfo) -> bool:
        """Whether the NF's QEMU exited by itself; the first time, a notification is queued."""
        d = self._idir(info.instance_id)
        if info.detail.get("migrated_to") or vm_qemu.running(d) is not None:
            return False
        flag = d / "crash-reported"
        if d.is_dir() and not flag.exists():
            flag.touch()
            self.queue.post({"nf_id": info.instance_id, "nf": info.name, "owner": info.owner,
                             "type": "vm-exited", "severity": "error", "source": "vm",
                             "detail": {"console_tail": _tail(d / "console.log")},
                             "ts": time.time()})
        return True

    def info(self, instance_id: str) -> NFInfo:
        return self.records.load(instance_id)

    def status(self, instance_id: str) -> NFInfo:
        """The record plus the NF's own status output and the VM's (QMP status, QEMU RSS)."""
        info = self.records.load(instance_id)
        detail: dict[str, Any] = {}
        if self._crashed(info):
            info.state = NFState.STOPPED
            info.detail = {"vm": "exited"}
            return info
        if info.detail.get("migrated_to") or info.detail.get("incoming"):
            return info
        if info.state in (NFState.RUNNING, NFState.STOPPED):
            out = self._run_script(info, self._bundle(info), "status", timeout=20)
            if out.strip():
                try:
                    detail = json.loads(out)
                except ValueError:
                    detail = {"raw": out[-4000:]}
        rec = vm_qemu.running(self._idir(instance_id))
        if rec is not None:
            detail["vm"] = self._qmp(instance_id).execute("query-status").get("status")
            detail["vm_rss_bytes"] = _rss(rec.pid)
        info.detail = detail
        return info

    def list_nfs(self) -> list[NFInfo]:
        """The records; an NF whose QEMU exited (a crash) is reported stopped, so the
        orchestrator's reconciliation has the agent start it again."""
        out = self.records.all()
        for info in out:
            if info.state != NFState.CREATED and self._crashed(info):
                info.state = NFState.STOPPED
                info.detail = {"vm": "exited"}
        return out

    def collect_garbage(self) -> list[str]:
        """End QEMUs and remove taps and directories that a crash mid-create left with no
        record. Only what this driver made: directories under its vms/, their recorded
        PIDs, and the taps named after them."""
        removed = []
        if self.vms_dir.is_dir():
            for d in self.vms_dir.iterdir():
                if self.records.has(d.name):
                    continue
                vm_qemu.stop(d)
                with contextlib.suppress(OSError, ValueError):
                    for p in self._bundle_ports(d):
                        vm_qemu.tap_delete(naming.nf_port(d.name, p))
                shutil.rmtree(d, ignore_errors=True)
                removed.append(str(d))
        rdir = self.records.records_dir
        for r in sorted(rdir.glob("*.json")) if rdir.is_dir() else []:
            if not self._idir(r.stem).exists():
                r.unlink(missing_ok=True)  # a record whose directory is gone
                removed.append(str(r))
        return removed

    @staticmethod
    def _bundle_ports(d: Path) -> list[str]:
        macs = vm_qemu.load_spec(d).get("macs")
        return sorted(macs) if isinstance(macs, dict) else []


def _rss(pid: int) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None


def _tail(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-1000:]
    return ""
