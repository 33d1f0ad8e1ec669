"""The native compute driver: an NF is a bundle of lifecycle scripts run in its own network
namespace, its ports veth pairs whose outer ends join the LSI (the NNF paper, section IV).

Every operation is idempotent, and create_nf rolls back what it made if a step fails.
Scripts get their inputs through the environment and files only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netfate import naming
from netfate.bundle import Bundle, BundleStore
from netfate.drivers import (
    capabilities,
    cgroups,
    netns,
    netns_release,
    nf_garbage,
    nf_pool,
    nf_state,
)
from netfate.drivers.create_checks import check_create, owners_config, taken
from netfate.drivers.nf_inproc import Call, FirewallRunner
from netfate.drivers.nf_records import InstanceRecords, dead_daemons
from netfate.drivers.nf_script import NF_PYTHON, SCRIPT_TIMEOUT, run_script, script_env
from netfate.drivers.nf_state import STATE_FORMAT
from netfate.errors import Conflict, DriverError, NotFound
from netfate.interfaces import ComputeContext, NFInfo, NFPort, NFState
from netfate.queue import NotificationQueue

# Re-exported: other modules and tests import them from here.
__all__ = ["NF_PYTHON", "SCRIPT_TIMEOUT", "STATE_FORMAT", "NativeCompute"]
log = logging.getLogger(__name__)


def _deleter(host_if: str) -> Callable[[], object]:
    return lambda: netns.delete_link(host_if)


class NativeCompute:
    """Table II for native NFs on one node."""

    flavour = "native"
    pool_tag = nf_pool.POOL_TAG  # names this driver's pooled namespaces (a flavour's own)

    def __init__(self, node: str, rundir: Path, store: BundleStore, mtu: int = 1500,
                 script_timeout: float = SCRIPT_TIMEOUT, fast_path: bool = True,
                 pool_size: int = 0) -> None:
        """``script_timeout``: seconds a lifecycle script may run before it is killed.
        ``pool_size``: pre-made namespaces with their veths kept per port layout (nf_pool).
        ``fast_path``: run the catalogue firewall's actions in-process (nf_inproc), not
        through its scripts (which stay the fallback and the contract)."""
        self.node = naming.check_node_name(node)
        self.mtu = mtu  # NF ports match the LSI's links
        self.script_timeout = script_timeout
        self.dir = rundir / "nodes" / node
        self.nfs_dir = self.dir / "nfs"
        self.records = InstanceRecords(self.node, self.nfs_dir, self.flavour)
        self.queue = NotificationQueue(self.dir / "queue")
        self.store = store
        self._caps: set[str] | None = None
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.inproc = FirewallRunner() if fast_path else None
        self.pool_size = pool_size
        self._pools: dict[tuple[str, ...], nf_pool.NamespacePool] = {}

    @classmethod
    def from_context(cls, ctx: ComputeContext) -> NativeCompute:
        """The factory the `netfate.compute` entry point `native` names."""
        return cls(ctx.node, ctx.rundir, ctx.store, mtu=ctx.mtu,
                   script_timeout=ctx.script_timeout,
                   pool_size=ctx.nf_pool_size)

    def close(self) -> None:
        """Release what the driver holds besides its NFs: its namespace pools (idempotent)."""
        with self._guard:
            pools, self._pools = list(self._pools.values()), {}
        for p in pools:
            p.close()

    def pool(self, ports: tuple[str, ...]) -> nf_pool.NamespacePool | None:
        """The pool of pre-made namespaces for NFs with these ports (made on first use and
        refilled in the background); None when pool_size is 0."""
        if self.pool_size <= 0:
            return None
        with self._guard:
            pool = self._pools.get(ports)
            if pool is None:
                pool = nf_pool.NamespacePool(self.node, ports, self.mtu, self.pool_size,
                                             tag=self.pool_tag)
                self._pools[ports] = pool
            return pool

    def set_pool_size(self, size: int, warm: tuple[str, ...] | None = ("lan", "wan")) -> None:
        """Resize the pools (when the size changes, the old entries are deleted); fill the
        pool of ports `warm` now, so the next NF with those ports is born into a pre-made
        namespace."""
        if max(0, size) != self.pool_size:
            self.close()
            self.pool_size = max(0, size)
        if warm is not None:
            pool = self.pool(warm)
            if pool is not None:
                pool.fill()

    # -- bookkeeping ----------------------------------------------------------------------
    @property
    def capabilities(self) -> set[str]:
        if self._caps is None:
            self._caps = capabilities.functional()
        return self._caps

    def _lock(self, instance_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(instance_id, threading.Lock())

    def _idir(self, instance_id: str) -> Path:
        return self.records.dir(instance_id)

    def _save(self, info: NFInfo) -> None:
        self.records.save(info)

    def _load(self, instance_id: str) -> NFInfo:
        return self.records.load(instance_id)

    def _cache_dir(self, bundle: Bundle) -> Path:
        """Shared by every instance of a bundle on this node, for artefacts derived from
        inputs (e.g. compiled rulesets), keyed by those inputs by the NF itself."""
        d = self.dir / "cache" / bundle.sha256
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _bundle(self, info: NFInfo) -> Bundle:
        return self.store.get(info.bundle_sha256)

    # -- scripts --------------------------------------------------------------------------
    def _run_script(
        self,
        info: NFInfo,
        bundle: Bundle,
        action: str,
        extra_env: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> str:
        """Run ``action``'s script of the NF (see `nf_script.run_script`); "" if it has none.
        The catalogue firewall's actions run in-process when they can (nf_inproc)."""
        if bundle.script(action) is None:
            return ""
        d = self._idir(info.instance_id)
        ports = tuple(p.name for p in info.ports)
        if self.inproc is not None and info.netns and self._in_process(info, bundle, action):
            extra = extra_env or {}
            state_file = extra.get("NF_EXPORT_FILE") or extra.get("NF_IMPORT_FILE")
            call = Call(action, info.netns, ports, d, self._cache_dir(bundle),
                        resume=bool(extra.get("NF_RESUME")),
                        state_file=Path(state_file) if state_file else None)
            try:
                self.inproc.run(call)
                return ""
            except Exception as exc:  # the script does the same, idempotently
                log.warning("%s: in-process %s failed (%s); running the script",
                            info.instance_id, action, exc)
        env = script_env(info, bundle, action, d, self.queue.root, self._cache_dir(bundle),
                         extra_env)
        return run_script(info, bundle, action, env, d,
                          self.script_timeout if timeout is None else timeout)

    def _in_process(self, info: NFInfo, bundle: Bundle, action: str) -> bool:
        """Whether ``action`` of this NF runs in-process (nf_inproc), not as its script."""
        return (self.inproc is not None and bool(info.netns)
                and self.inproc.handles(bundle.sha256, action,
                                        tuple(p.name for p in info.ports)))

    # -- what a flavour built on this one changes (netfate.drivers.container) -------------
    def _provision(self, info: NFInfo, bundle: Bundle, undo: list[Callable[[], object]]) -> None:
        """Called in create once the namespace, ports and cgroups exist, before the record is
        saved and the create script runs; appends its own undo steps. Native: nothing."""

    def _take_entry(self, info: NFInfo, bundle: Bundle,
                    undo: list[Callable[[], object]]) -> nf_pool.Entry | None:
        """A pre-made namespace with the NF's ports to be born into (nf_pool), or None: the
        NF's namespace is then made for it. Appends undo steps for what else it hands out."""
        pool = self.pool(tuple(p.name for p in info.ports))
        return pool.take() if pool is not None else None

    def _make_cgroups(self, info: NFInfo, bundle: Bundle,
                      undo: list[Callable[[], object]]) -> None:
        """The NF's cgroups with the descriptor's limits (cgroups.create), and their undo."""
        iid = info.instance_id
        res = bundle.descriptor.resources
        cgroups.create(iid, res.memory_mb, res.cpu_percent)
        undo.append(lambda: cgroups.delete(iid))

    def _created(self, info: NFInfo) -> None:
        """Called by create after the create script, before create returns (a failure
        rolls the create back). Native: nothing."""

    def _freeze(self, instance_id: str, frozen: bool) -> None:
        """Freeze or thaw every process of the NF (pauseNF)."""
        cgroups.set_frozen(instance_id, frozen)

    def _revive(self, info: NFInfo) -> None:
        """Called by start before the start script (not when resuming): bring back what
        must run for the scripts to run. Native: nothing (the scripts start the daemons)."""

    def _teardown(self, info: NFInfo) -> None:
        """Called by delete after the delete script, before the cgroups go. Native: nothing."""

    # -- Table II -------------------------------------------------------------------------
    def create_nf(
        self, node: str, owner: str, name: str, bundle_sha256: str, config: dict[str, Any],
        on_ports: Callable[[NFInfo], None] | None = None,
    ) -> NFInfo:
        bundle, cfg, iid = check_create(self.node, self.flavour, self.capabilities,
                                        self.store, node, owner, name, bundle_sha256, config)
        with self._lock(iid):
            with contextlib.suppress(NotFound):
                existing = self._load(iid)
                if (existing.owner, existing.name, existing.bundle_sha256, existing.config) \
                        == (owner, name, bundle.sha256, cfg):
                    return existing  # idempotent re-apply (never another owner's NF)
                raise taken(existing, owner, name)
            return self._create(iid, node, owner, name, bundle, cfg, on_ports)

    def _create(
        self, iid: str, node: str, owner: str, name: str, bundle: Bundle, cfg: dict[str, Any],
        on_ports: Callable[[NFInfo], None] | None = None,
    ) -> NFInfo:
        desc = bundle.descriptor
        ns = naming.nf_netns(node, owner, name)
        ports = [NFPort(p.name, naming.nf_port(iid, p.name)) for p in desc.ports]
        info = NFInfo(
            instance_id=iid, node=node, owner=owner, name=name, flavour=self.flavour,
            bundle_sha256=bundle.sha256, state=NFState.CREATED, ports=ports, config=cfg,
            netns=ns,
        )
        undo: list[Callable[[], object]] = []
        d = self._idir(iid)
        try:
            if netns.exists(ns):
                raise Conflict(f"namespace {ns} already exists (a leftover? run 'testbed down')")
            d.mkdir(parents=True)
            undo.append(lambda: shutil.rmtree(d, ignore_errors=True))
            undo.append(lambda: self.records.forget(iid))
            for sub in ("state", "run"):
                (d / sub).mkdir()
            self.queue.ensure()
            (d / "config.json").write_text(json.dumps(cfg))
            entry = self._take_entry(info, bundle, undo)
            if entry is not None:  # born into a pre-made namespace (never used before)
                undo.append(lambda: netns.delete(entry.netns))
                undo.append(lambda: netns.delete(ns))  # its veths go with it
                nf_pool.adopt(entry, ns, [p.host_if for p in ports])
            else:  # made here as a pool entry is (IPv6 off: no RS/DAD/MLD from NF ports
                # into the user's network; VLAN-tagged frames filtered: a shared NF's tenants)
                nf_pool.make_entry(ns, tuple(p.name for p in ports), self.mtu,
                                   host_ifs=tuple(p.host_if for p in ports))
                undo.append(lambda: netns.delete(ns))
                undo.extend(_deleter(p.host_if) for p in ports)
            if on_ports is not None:
                on_ports(info)
            self._make_cgroups(info, bundle, undo)
            self._provision(info, bundle, undo)
            self._save(info)
            self._run_script(info, bundle, "create")
            self._created(info)
        except BaseException:
            for step in reversed(undo):
                with contextlib.suppress(Exception):
                    step()
            raise
        return info

    def start_nf(self, instance_id: str) -> NFInfo:
        with self._lock(instance_id):
            info = self._load(instance_id)
            if info.state == NFState.RUNNING and not self._dead(instance_id):
                return info  # (a running NF whose daemon died is started again)
            extra = {}
            if info.state == NFState.PAUSED:
                self._freeze(instance_id, False)
                extra["NF_RESUME"] = "1"
            else:
                self._revive(info)
            self._run_script(info, self._bundle(info), "start", extra)
            info.state = NFState.RUNNING
            info.own_macs = netns.own_macs(info.netns or "", {p.name for p in info.ports})
            self._save(info)
            return info

    def stop_nf(self, instance_id: str) -> NFInfo:
        with self._lock(instance_id):
            info = self._load(instance_id)
            if info.state in (NFState.STOPPED, NFState.CREATED):
                return info
            if info.state == NFState.PAUSED:
                self._freeze(instance_id, False)
            self._run_script(info, self._bundle(info), "stop")
            info.state = NFState.STOPPED
            self._save(info)
            return info

    def pause_nf(self, instance_id: str) -> NFInfo:
        with self._lock(instance_id):
            info = self._load(instance_id)
            if info.state == NFState.PAUSED:
                return info
            if info.state != NFState.RUNNING:
                raise Conflict(f"{instance_id} is {info.state}; only a running NF can be paused")
            self._run_script(info, self._bundle(info), "pause")
            self._freeze(instance_id, True)
            info.state = NFState.PAUSED
            self._save(info)
            return info

    def update_nf(self, instance_id: str, config: dict[str, Any]) -> NFInfo:
        with self._lock(instance_id):
            info = self._load(instance_id)
            bundle = self._bundle(info)
            cfg = owners_config(bundle.descriptor, info.owner, config)
            path = self._idir(instance_id) / "config.json"
            old = path.read_text()
            path.write_text(json.dumps(cfg))
            try:
                if info.state == NFState.RUNNING:
                    self._run_script(info, bundle, "update")
            except BaseException:
                path.write_text(old)
                raise
            info.config = cfg
            self._save(info)
            return info

    def delete_nf(self, instance_id: str) -> None:
        with self._lock(instance_id):
            try:
                info = self._load(instance_id)
            except NotFound:
                return
            errors = []
            if netns.exists(info.netns or ""):
                bundle = None
                with contextlib.suppress(NotFound):
                    bundle = self._bundle(info)
                self._freeze(instance_id, False)
                if bundle is not None:
                    actions = ["stop", "delete"] if info.state != NFState.CREATED else ["delete"]
                    if self._in_process(info, bundle, "stop"):
                        # The in-process firewall's stop only takes its bridge down, which
                        # the namespace's release does too; its netlink request would wait
                        # on the kernel's cleanup of NFs deleted just before (~18 ms).
                        actions = [a for a in actions if a != "stop"]
                    for action in actions:
                        try:
                            self._run_script(info, bundle, action, timeout=10)
                        except DriverError as exc:
                            errors.append(str(exc))
            self._teardown(info)
            cgroups.delete(instance_id)  # its processes ended: nothing holds the namespace
            outer = [p.host_if for p in info.ports]
            if info.netns and netns.exists(info.netns):
                # Its ports go with it, in the kernel's batched cleanup of namespaces,
                # without a wait here (netns_release: ~2 ms here, the kernel's ~20 ms per
                # firewall after it, against 40-50 ms waited for before).
                netns_release.release(info.netns, outer)
            else:
                with netns.iproute() as ipr:
                    for h in outer:
                        netns.delete_link(h, ipr=ipr)
            shutil.rmtree(self._idir(instance_id), ignore_errors=True)
            self.records.forget(instance_id)
        with self._guard:
            self._locks.pop(instance_id, None)

    def export_state(self, instance_id: str) -> dict[str, Any]:
        with self._lock(instance_id):
            info = self._load(instance_id)
            return nf_state.export_state(info, self._bundle(info), self._idir(instance_id),
                                         self._runner(info))

    def import_state(self, instance_id: str, state: dict[str, Any]) -> None:
        with self._lock(instance_id):
            info = self._load(instance_id)
            nf_state.import_state(info, self._bundle(info), self._idir(instance_id), state,
                                  self._runner(info))
            self._save(info)

    def _runner(self, info: NFInfo) -> nf_state.RunScript:
        bundle = self._bundle(info)
        return lambda action, extra: self._run_script(info, bundle, action, extra)

    def info(self, instance_id: str) -> NFInfo:
        """The NF's record (state, ports, config), without asking the NF itself."""
        return self._load(instance_id)

    def status(self, instance_id: str) -> NFInfo:
        """The record plus the NF's own status output (its status script) and memory use."""
        info = self._load(instance_id)
        detail: dict[str, Any] = {}
        if info.state in (NFState.RUNNING, NFState.STOPPED):
            out = self._run_script(info, self._bundle(info), "status", timeout=10)
            if out.strip():
                try:
                    detail = json.loads(out)
                except ValueError:
                    detail = {"raw": out[-4000:]}
        mem = cgroups.memory_bytes(instance_id)
        if mem is not None:
            detail["cgroup_memory_bytes"] = mem
        info.detail = detail
        return info

    def collect_garbage(self) -> list[str]:
        """Remove what a crash mid-create left on this node: NF namespaces, cgroups and
        directories with no instance record. Run at agent start, before reconciling."""
        with self._guard:
            pooled = set().union(*(p.names() for p in self._pools.values()))
        return nf_garbage.collect(self.node, self.records, self.nfs_dir, pooled, self.pool_tag)

    def list_nfs(self) -> list[NFInfo]:
        """The records; a running NF whose daemon died (a crash, a kill -9) is reported
        stopped, so the orchestrator's reconciliation has its agent start it again."""
        out = self.records.all()
        for info in out:
            if info.state == NFState.RUNNING and self._dead(info.instance_id):
                info.state = NFState.STOPPED
        return out

    def _dead(self, instance_id: str) -> list[str]:
        return dead_daemons(self._idir(instance_id) / "run")
