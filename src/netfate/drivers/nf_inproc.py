"""The in-process fast path of the catalogue's firewall: its lifecycle actions done by the
agent itself, through libnftables (Debian's python3-nftables) and netlink (pyroute2), instead
of a bash + nsenter + nft/ip process per action (5-20 ms each on a small CPE).

The script contract stays the contract (catalogue/README.md): this runner serves only the
exact catalogue bundle (matched by sha256, so a modified or third-party bundle always runs
its scripts), does what its scripts do, step by step, with the same files (the active
config, the compiled ruleset, the shared ruleset cache under the same key), and
tests/integration/test_fastpath.py checks that both paths leave the same namespace behind.
Any failure before it is done falls back to the script: every action is idempotent.

The idea is the NNF paper's "native" NF with the per-call cost taken out, as LightVM and
SOCK do for VMs and containers (the runner stays, only the work per NF remains).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import queue
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from netfate import catalogue
from netfate.drivers import netns
from netfate.errors import ConfigRefused, DriverError
from netfate.proc import run as run_cmd

log = logging.getLogger(__name__)

BRIDGE = "br0"
HANDLED = frozenset({"create", "start", "stop", "pause", "update", "delete", "export-state",
                     "import-state"})


@dataclass(frozen=True)
class Call:
    """One action on one NF: what a script would get through its environment."""

    action: str
    netns: str
    ports: tuple[str, ...]   # NF_PORTS, descriptor order
    nf_dir: Path             # NF_DIR; NF_CONFIG is nf_dir/config.json
    cache_dir: Path | None   # NF_CACHE_DIR
    resume: bool = False     # NF_RESUME=1
    state_file: Path | None = None  # NF_EXPORT_FILE / NF_IMPORT_FILE

    @property
    def state_dir(self) -> Path:
        return self.nf_dir / "state"

    @property
    def active_config(self) -> Path:
        return self.state_dir / "config.json"

    @property
    def ruleset(self) -> Path:
        return self.state_dir / "ruleset.nft"

    @property
    def paused_flag(self) -> Path:
        return self.nf_dir / "run" / "paused"


class FirewallRunner:
    """Runs the firewall bundle's create/start/stop/pause/update/delete in this process."""

    def __init__(self) -> None:
        self._sha: str | None = None
        self._fw: ModuleType | None = None
        self._guard = threading.Lock()

    # -- which bundle ---------------------------------------------------------------------
    def catalogue_sha(self) -> str:
        with self._guard:
            if self._sha is None:
                self._sha = hashlib.sha256(catalogue.bundle_bytes("firewall")).hexdigest()
            return self._sha

    def handles(self, bundle_sha256: str, action: str, ports: tuple[str, ...]) -> bool:
        return (action in HANDLED and len(ports) == 2
                and bundle_sha256 == self.catalogue_sha())

    def fw(self) -> ModuleType:
        """The bundle's own fw.py (its ruleset compiler), from the catalogue source the
        bundle was packed from (same sha256), with nfcommon as its sibling."""
        with self._guard:
            if self._fw is None:
                self._fw = _load_fw()
            return self._fw

    # -- actions ----------------------------------------------------------------------------
    def run(self, call: Call) -> None:
        """Do the action; DriverError (or any error) when it could not: the caller then runs
        the script, which does the same idempotently and reports the NF's own error."""
        getattr(self, "_" + call.action.replace("-", "_"))(call)

    def _create(self, c: Call) -> None:
        self._config_take(c)
        self._compile(c)
        self._bridge_create(c)

    def _start(self, c: Call) -> None:
        if not _nonempty(c.active_config):
            self._config_take(c)
        if not _nonempty(c.ruleset):
            self._compile(c)
        nft_load(c.netns, c.ruleset.read_text())  # rules first: never forward unfiltered
        with netns.iproute(c.netns) as ipr:
            idx = _indexes(c)
            if BRIDGE not in idx:  # start without create (bridge_up)
                idx = _bridge_ensure(c, ipr, idx, up_ports=True)
            ipr.link("set", index=idx[BRIDGE], state="up")
        c.paused_flag.unlink(missing_ok=True)

    def _stop(self, c: Call) -> None:
        _bridge_down(c.netns)
        c.paused_flag.unlink(missing_ok=True)

    def _pause(self, c: Call) -> None:
        _bridge_down(c.netns)
        c.paused_flag.touch()

    def _update(self, c: Call) -> None:
        cfg = _read_json_object(c.nf_dir / "config.json")
        self._build(cfg, c.ports)  # `fw check`: refuse before touching anything
        self._config_take(c)
        self._compile(c)
        nft_load(c.netns, c.ruleset.read_text())

    def _delete(self, c: Call) -> None:
        """Nothing: all the firewall has lives in its namespace, which the driver deletes."""

    def _export_state(self, c: Call) -> None:
        """fw.py export: the active config and `conntrack -L -o save` of the namespace (one
        conntrack process, without bash or Python before it)."""
        if c.state_file is None:
            raise DriverError("NF_EXPORT_FILE is not set")
        src = c.active_config if c.active_config.exists() else c.nf_dir / "config.json"
        cfg = _read_json_object(src)
        cp = run_cmd(["conntrack", "-L", "-o", "save"], netns=c.netns, check=False)
        if cp.returncode != 0:
            raise DriverError(f"conntrack -L failed: {cp.stderr.decode(errors='replace')}")
        fw = self.fw()
        fw.nf.write_state_doc(str(c.state_file), "firewall", cfg,
                              conntrack=fw.st.saved_entries(cp.stdout.decode(errors="replace")))

    def _import_state(self, c: Call) -> None:
        """import-state: bridge_ensure, then fw.py import (config, ruleset, conntrack)."""
        if c.state_file is None:
            raise DriverError("NF_IMPORT_FILE is not set")
        fw = self.fw()
        doc = _read_json_object(c.state_file)
        cfg = doc.get("config")
        if doc.get("nf") != "firewall" or not isinstance(cfg, dict):
            raise DriverError("not a firewall state document with a config")
        try:
            entries: list[str] = fw.st.check_entries(doc.get("conntrack", []))
        except SystemExit:
            raise DriverError("malformed conntrack entries") from None
        text = self._build(cfg, c.ports)  # validate before touching anything
        with netns.iproute(c.netns) as ipr:
            _bridge_ensure(c, ipr, _indexes(c), up_ports=True)
        fw.nf.atomic_write_json(str(c.active_config), cfg, indent=1)
        _atomic_write(c.ruleset, text.encode())
        nft_load(c.netns, text)
        _restore_conntrack(c, entries)

    # -- steps (common.sh / fwlib.sh) -----------------------------------------------------
    @staticmethod
    def _config_take(c: Call) -> None:
        data = (c.nf_dir / "config.json").read_bytes()
        _atomic_write(c.active_config, data)

    def _build(self, cfg: dict[str, Any], ports: tuple[str, ...]) -> str:
        try:
            text: str = self.fw().build_ruleset(cfg, (ports[0], ports[1]))
        except SystemExit:  # fw.die(): the script path reports the NF's own message
            raise ConfigRefused("the firewall refused its configuration (fw.py)") from None
        return text

    def _compile(self, c: Call) -> None:
        """fwlib.sh compile_ruleset: through the node's cache, under the script's key."""
        config = c.active_config.read_bytes()
        if c.cache_dir is None:
            _atomic_write(c.ruleset, self._build(_json_object(config), c.ports).encode())
            return
        key = hashlib.sha256((" ".join(c.ports) + "\n").encode() + config).hexdigest()
        cached = c.cache_dir / f"ruleset-{key}.nft"
        if not _nonempty(cached):
            _atomic_write(cached, self._build(_json_object(config), c.ports).encode())
        _atomic_write(c.ruleset, cached.read_bytes())

    @staticmethod
    def _bridge_create(c: Call) -> None:
        """common.sh bridge_create: br0 (STP off, no forward delay) with the ports, down."""
        with netns.iproute(c.netns) as ipr:
            _bridge_ensure(c, ipr, _indexes(c), up_ports=False)


def _indexes(c: Call) -> dict[str, int]:
    """Index of br0 and of each port in the NF's namespace, of those that exist."""
    return netns.indexes(c.netns, [BRIDGE, *c.ports])


def _bridge_ensure(c: Call, ipr: Any, idx: dict[str, int], up_ports: bool) -> dict[str, int]:
    """common.sh bridge_ensure: br0 exists, IPv6 off on it, every port a member (and up, for
    a bridge made by start). The interface indexes, br0's included."""
    if BRIDGE not in idx:
        ipr.link("add", ifname=BRIDGE, kind="bridge", br_stp_state=0, br_forward_delay=0)
        idx = _indexes(c)
    _no_ipv6(c.netns, BRIDGE)
    for p in c.ports:
        if p not in idx:
            raise DriverError(f"port {p} does not exist in the NF namespace")
        ipr.link("set", index=idx[p], master=idx[BRIDGE])
        if up_ports:
            ipr.link("set", index=idx[p], state="up")
    return idx


# -- kernel helpers -----------------------------------------------------------------------
def nft_load(ns: str, text: str) -> None:
    """`nft -f` of a ruleset text inside the namespace, through libnftables in this thread
    (its netlink socket is opened while the thread is in the namespace). Atomic, like nft -f.
    DriverError with nft's message if the kernel refuses it."""
    import nftables  # type: ignore[import-untyped]  # Debian: python3-nftables

    with netns.entered(ns):
        ctx = nftables.Nftables()  # its netlink socket is made here, in the namespace
    try:
        rc, _out, err = ctx.cmd(text)
    finally:
        _reaper.put(ctx)
    if rc != 0:
        raise DriverError(f"nft refused the ruleset in {ns}: {err.strip()[-500:]}")


class _Reaper:
    """Frees libnftables contexts off the caller's path: nft_ctx_free takes ~10 ms here
    (closing its netlink socket), which an NF's start need not wait for. Nothing else is
    held: a context's socket would keep its namespace alive until freed."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, ctx: object) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="nft-reaper",
                                                daemon=True)
                self._thread.start()
        self._q.put(ctx)

    def _run(self) -> None:
        while True:
            ctx = self._q.get()
            del ctx  # the last reference: Nftables.__del__ frees it


_reaper = _Reaper()


def _restore_conntrack(c: Call, entries: list[str]) -> None:
    """fw.py _restore_conntrack: `conntrack -R` in the namespace; if that fails (an entry
    exists already: a flow picked up again between start and import), one at a time."""
    if not entries:
        return
    path = c.nf_dir / "run" / f".import-{threading.get_native_id()}.ct"
    try:
        path.write_text("\n".join(entries) + "\n")
        if run_cmd(["conntrack", "-R", str(path)], netns=c.netns, check=False).returncode == 0:
            return
        for ln in entries:
            path.write_text(ln + "\n")
            run_cmd(["conntrack", "-R", str(path)], netns=c.netns, check=False)
    finally:
        path.unlink(missing_ok=True)


def _bridge_down(ns: str) -> None:
    idx = netns.indexes(ns, [BRIDGE]).get(BRIDGE)
    if idx is not None:
        with netns.iproute(ns) as ipr:
            ipr.link("set", index=idx, state="down")


def _no_ipv6(ns: str, ifname: str) -> None:
    with netns.entered(ns), contextlib.suppress(OSError), open(
        f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6", "w"
    ) as fh:
        fh.write("1")


def _nonempty(p: Path) -> bool:
    try:
        return p.stat().st_size > 0
    except FileNotFoundError:
        return False


def _atomic_write(p: Path, data: bytes) -> None:
    tmp = p.with_name(f"{p.name}.tmp.{os.getpid()}.{threading.get_native_id()}")
    tmp.write_bytes(data)
    os.replace(tmp, p)


def _json_object(data: bytes) -> dict[str, Any]:
    import json

    try:
        cfg = json.loads(data)
    except ValueError as exc:
        raise DriverError(f"config is not JSON: {exc}") from None
    if not isinstance(cfg, dict):
        raise DriverError("config must be a JSON object")
    return cfg


def _read_json_object(p: Path) -> dict[str, Any]:
    return _json_object(p.read_bytes())


def _load_fw() -> ModuleType:
    """catalogue/firewall/files/fw.py as its bundle runs it (nfcommon a sibling module),
    without leaving its directory on this process's sys.path."""
    shared = Path(catalogue.__file__).parent / "_shared"
    path = catalogue.source_dir("firewall") / "files" / "fw.py"
    saved = list(sys.path)
    try:
        if "nfcommon" not in sys.modules:
            sys.modules["nfcommon"] = _module("nfcommon", shared / "nfcommon.py")
        if "ctstate" not in sys.modules:  # fw.py's sibling in its bundle (catalogue.EXTRAS)
            sys.modules["ctstate"] = _module("ctstate", shared / "ctstate.py")
        return _module("netfate_inproc_fw", path)
    finally:
        sys.path[:] = saved


def _module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise DriverError(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
