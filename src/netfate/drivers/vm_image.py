"""The VM flavour's guest: Debian's kernel plus an initramfs the project builds itself.

`build()` makes, under the cache directory (default /var/cache/netfate/vm):

- ``debs/linux-image-<abi>_*.deb``: fetched with ``apt-get download`` (never installed on the
  host: its /boot and /lib/modules stay untouched) and unpacked with ``dpkg-deb -x`` into
  ``kernel/<abi>/``;
- ``guest-<key>.cpio.gz``: a newc initramfs holding busybox-static, the NFs' tools (bash,
  python3 with a trimmed stdlib, nft, ip, bridge, conntrack, iptables-nft with the few xtables
  extensions the catalogue uses; strongSwan's charon-systemd, swanctl and the plugins the VPN
  loads) and their shared libraries,
  the kernel modules the NFs need (virtio, bridge, netfilter; matching the guest kernel, with
  a modules.dep from ``depmod -b``), qemu-guest-agent (the guest channel: guest-exec over
  virtio-serial) and an /init that brings it all up;
- ``guest.json``: the manifest the VM driver reads (kernel, initrd, sizes, key).

Reproducible and idempotent: the archive is written with sorted entries, zero mtimes and
owners, and gzip without a timestamp; ``key`` hashes every input (kernel ABI, the files
copied, /init), so a second build with the same inputs changes nothing and returns the same
manifest. The NNF paper (section IV, Table IV) compares exactly such a small VM flavour.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from netfate.drivers.vm_cpio import CpioWriter
from netfate.errors import DriverError
from netfate.oci.build import EXTRA_LIBS as OCI_EXTRA_LIBS

DEFAULT_CACHE = Path("/var/cache/netfate/vm")
KERNEL_META = "linux-image-amd64"

# Host binaries copied into the guest (with their shared libraries): the NFs' tools.
TOOLS = ("/usr/bin/bash", "/usr/sbin/nft", "/usr/sbin/conntrack", "/usr/bin/python3.11",
         "/usr/sbin/qemu-ga", "/usr/sbin/xtables-nft-multi")
IPROUTE = ("/usr/sbin/ip", "/usr/sbin/bridge")  # iproute2: busybox's ip lacks -j and bridges
BUSYBOX = "/bin/busybox"
# iptables (nft backend: the content filter's NFQUEUE rule): the names xtables-nft-multi
# dispatches on, and the extensions it dlopen()s (ldd misses them), only those the catalogue's
# rules use (the whole directory is 2 MB).
XTABLES_NAMES = ("iptables", "iptables-restore", "ip6tables", "ip6tables-restore")
XTABLES_DIR = "/usr/lib/x86_64-linux-gnu/xtables"
XTABLES_EXTS = ("libxt_standard.so", "libxt_mark.so", "libxt_udp.so", "libxt_tcp.so",
                "libxt_NFQUEUE.so")
ETC_FILES = ("/etc/protocols", "/etc/services")  # protocol/port names (iptables -p udp)
# strongSwan (the VPN NF; bootstrap.sh installs it), always carried: a VM brings its own user
# space, so no host capability says whether a guest has it (resolver.needed_on_host). The
# VPN runs charon-systemd with its own strongswan.conf (load_modular = no, the plugins named
# in catalogue/vpn/files/swan.py PLUGINS), so no /etc/strongswan* is needed; the plugins are
# dlopen()ed (ldd misses them): the container image's list (netfate.oci.build), with libgcc_s
# that glibc dlopen()s when charon cancels a thread. kernel-libipsec (userspace ESP on a TUN)
# as on the host, though Debian's guest kernel has ESP: the NF's files, routes and ruleset
# stay the same in every flavour (the TUN ipsec0), and its state moves between them as is.
STRONGSWAN = ("/usr/sbin/charon-systemd", "/usr/sbin/swanctl")
STRONGSWAN_LIBS = OCI_EXTRA_LIBS["strongswan"]
# Kernel modules the NFs need (and, through modules.dep, what they depend on): the virtio
# devices, the bridge with br_netfilter, nftables with conntrack, NAT and the common matches.
MODULES = ("crc32c_generic", "virtio_pci", "virtio_net", "virtio_console", "bridge",
           "br_netfilter", "nf_tables",
           "nf_conntrack", "nf_conntrack_netlink", "nft_ct", "nft_chain_nat", "nft_nat",
           "nft_masq", "nft_limit", "nft_reject_inet", "nft_log",
           "nft_fib_inet", "nft_numgen", "nft_quota", "nft_redir", "nft_hash",
           "nft_meta_bridge", "nf_log_syslog", "nf_conntrack_bridge", "nfnetlink_queue",
           "nft_queue", "nft_compat", "xt_mark", "xt_tcpudp", "xt_NFQUEUE", "sch_htb", "sch_tbf",
           "sch_ingress", "cls_u32", "act_mirred", "ifb", "veth", "tun")
PY_STDLIB = Path("/usr/lib/python3.11")
CATALOGUE = Path(__file__).resolve().parent.parent / "catalogue"
# What Python imports at startup (site included): modulefinder does not see these.
PY_STARTUP = ("encodings.aliases", "encodings.utf_8", "encodings.ascii", "encodings.latin_1",
              "site", "sysconfig", "_sysconfigdata__x86_64-linux-gnu", "codecs", "io", "abc",
              "os", "stat", "posixpath", "genericpath", "_collections_abc", "_sitebuiltins")

INIT = Path(__file__).with_name("vm_init.sh")


def executables() -> set[str]:
    """The names of the commands the guest has besides busybox's applets (what an NF's
    scripts and helpers may run in a VM)."""
    return {Path(t).name for t in (*TOOLS, *IPROUTE, *STRONGSWAN)} | set(XTABLES_NAMES) \
        | {"python3"}


def python_stdlib() -> set[str]:
    """The top-level stdlib module names whose files the guest carries (lib-dynload
    extensions included; modules built into the interpreter are not files)."""
    out = set()
    for f in _python_files():
        rel = f.relative_to(PY_STDLIB)
        if rel.parts[0] == "lib-dynload":
            out.add(rel.name.split(".")[0])
        elif "__pycache__" not in rel.parts:
            out.add(rel.parts[0].removesuffix(".py"))
    return out


@dataclass(frozen=True)
class GuestImage:
    """The guest the VM driver boots: paths are absolute; sizes in bytes."""

    kernel: str
    initrd: str
    kernel_abi: str
    key: str
    kernel_bytes: int
    initrd_bytes: int

    @property
    def disk_bytes(self) -> int:
        return self.kernel_bytes + self.initrd_bytes


def load(cache: Path = DEFAULT_CACHE) -> GuestImage:
    """The built guest's manifest. DriverError (saying how to build it) if there is none or
    its files are gone."""
    try:
        img = GuestImage(**json.loads((cache / "guest.json").read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise DriverError(f"no VM guest image in {cache} ({exc}); build it with "
                          "'netfate images build-vm'") from None
    if not (Path(img.kernel).is_file() and Path(img.initrd).is_file()):
        raise DriverError(f"VM guest image in {cache} is incomplete; rebuild it with "
                          "'netfate images build-vm'")
    return img


def build(cache: Path = DEFAULT_CACHE, *, force: bool = False) -> GuestImage:
    """Build (or find already built) the guest under ``cache``; returns its manifest.
    DriverError when a tool or package is missing (apt-get, dpkg-deb, depmod, busybox-static,
    the NFs' tools) or the kernel package can't be fetched."""
    cache.mkdir(parents=True, exist_ok=True)
    abi = _kernel_abi()
    kdir = _kernel(cache, abi)
    files = _collect(kdir, abi)
    init = INIT.read_bytes()
    h = hashlib.sha256(init)
    for mod in (Path(__file__), Path(__file__).with_name("vm_cpio.py")):  # the builder itself
        h.update(mod.read_bytes())
    h.update(abi.encode())
    for dest in sorted(files):
        h.update(dest.encode())
        h.update(_digest(files[dest]).encode())
    key = h.hexdigest()[:16]
    initrd = cache / f"guest-{key}.cpio.gz"
    kernel = kdir / "boot" / f"vmlinuz-{abi}"
    if force or not initrd.is_file():
        _write_initrd(initrd, files, init, kdir, abi)
    img = GuestImage(str(kernel), str(initrd), abi, key, kernel.stat().st_size,
                     initrd.stat().st_size)
    manifest = cache / "guest.json"
    text = json.dumps(asdict(img), indent=1)
    if not manifest.is_file() or manifest.read_text() != text:
        tmp = manifest.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, manifest)
    for old in cache.glob("guest-*.cpio.gz"):
        if old != initrd:
            old.unlink(missing_ok=True)
    return img


def _run(argv: list[str], cwd: Path | None = None) -> str:
    try:
        cp = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603
    except FileNotFoundError:
        raise DriverError(f"{argv[0]} is not installed") from None
    if cp.returncode != 0:
        raise DriverError(f"{' '.join(argv)} failed: {cp.stderr.strip()[-500:]}")
    return cp.stdout


def _kernel_abi() -> str:
    """The ABI of the kernel Debian's linux-image-amd64 depends on (e.g. 6.1.0-57-amd64)."""
    for line in _run(["apt-cache", "depends", KERNEL_META]).splitlines():
        dep = line.strip().removeprefix("Depends: ")
        if dep.startswith("linux-image-") and dep != KERNEL_META:
            return dep.removeprefix("linux-image-")
    raise DriverError(f"apt-cache names no kernel package for {KERNEL_META}")


def _kernel(cache: Path, abi: str) -> Path:
    """The unpacked kernel package (fetched and unpacked once)."""
    kdir = cache / "kernel" / abi
    if (kdir / "boot" / f"vmlinuz-{abi}").is_file() and (kdir / ".complete").is_file():
        return kdir
    debs = cache / "debs"
    debs.mkdir(exist_ok=True)
    found = sorted(debs.glob(f"linux-image-{abi}_*.deb"))
    if not found:
        _run(["apt-get", "download", f"linux-image-{abi}"], cwd=debs)
        found = sorted(debs.glob(f"linux-image-{abi}_*.deb"))
    if not found:
        raise DriverError(f"apt-get download linux-image-{abi} left no package")
    shutil.rmtree(kdir, ignore_errors=True)
    kdir.mkdir(parents=True)
    _run(["dpkg-deb", "-x", str(found[-1]), str(kdir)])
    (kdir / ".complete").touch()
    return kdir


def _libs(binary: str) -> list[str]:
    """The shared libraries ``binary`` loads (ldd), with the dynamic loader."""
    out = []
    for line in _run(["ldd", binary]).splitlines():
        parts = line.split()
        if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
            out.append(parts[2])
        elif parts and parts[0].startswith("/"):
            out.append(parts[0])
    return out


def _add_binary(files: dict[str, Path], path: str) -> None:
    """``path`` at its own place in the guest, with the shared libraries it loads."""
    files[path.lstrip("/")] = Path(path).resolve()
    for lib in _libs(path):
        files[lib.lstrip("/")] = Path(lib).resolve()


def _collect(kdir: Path, abi: str) -> dict[str, Path]:
    """Guest path -> host file, for everything but /init and the generated module index."""
    files: dict[str, Path] = {}
    if not Path(BUSYBOX).is_file():
        raise DriverError(f"{BUSYBOX} is missing (install busybox-static)")
    files["bin/busybox"] = Path(BUSYBOX)
    for tool in (*TOOLS, *IPROUTE):
        if not Path(tool).is_file():
            raise DriverError(f"{tool} is missing on this host (see scripts/bootstrap.sh)")
        _add_binary(files, tool)
    for f in (*STRONGSWAN, *STRONGSWAN_LIBS):
        if not Path(f).is_file():
            raise DriverError(f"{f} is missing on this host: the VPN's strongSwan "
                              "(see scripts/bootstrap.sh)")
        _add_binary(files, f)
    for ext in XTABLES_EXTS:
        src = Path(XTABLES_DIR) / ext
        if not src.is_file():
            raise DriverError(f"{src} is missing on this host (install iptables)")
        files[f"{XTABLES_DIR.lstrip('/')}/{ext}"] = src
    for etc in ETC_FILES:
        if Path(etc).is_file():
            files[etc.lstrip("/")] = Path(etc)
    for src in _python_files():
        files[f"usr/lib/python3.11/{src.relative_to(PY_STDLIB)}"] = src
    mroot = kdir / "lib" / "modules" / abi
    for ko in _module_closure(mroot):
        files[f"lib/modules/{abi}/{ko.relative_to(mroot)}"] = ko
    return files


_IMPORTER = """
import importlib, json, sys
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception:
        pass
print(json.dumps(sorted({getattr(m, "__file__", None) or "" for m in list(sys.modules.values())})))
"""


def _python_files() -> list[Path]:
    """The stdlib files that the catalogue's Python helpers (files/*.py, and the shared ones in
    _shared/ that bundles ship beside them) import, found by
    importing their imports in a fresh interpreter, with the compiled .pyc, and what the
    interpreter loads at startup (site included). A static closure (modulefinder) drags in
    most of the stdlib through typing and friends."""
    import importlib.util

    names: set[str] = set(PY_STARTUP)
    for script in sorted({*CATALOGUE.glob("*/files/*.py"), *CATALOGUE.glob("_shared/*.py")}):
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
    names = {n for n in names if not n.startswith("netfate")}
    found = json.loads(_run([TOOLS[3], "-I", "-c", _IMPORTER, *sorted(names)]))
    out: set[Path] = set()
    for f in found:
        src = Path(f)
        if not f or not src.is_relative_to(PY_STDLIB) or not src.is_file():
            continue
        out.add(src)
        if src.suffix == ".py":
            pyc = Path(importlib.util.cache_from_source(str(src)))
            if pyc.is_file():
                out.add(pyc)
    return sorted(out)


def _module_closure(mroot: Path) -> list[Path]:
    """The .ko files of MODULES and their dependencies, from a modules.dep that depmod
    writes once into the unpacked package (the package ships none)."""
    dep = mroot / "modules.dep"
    if not dep.is_file():
        _run(["depmod", "-b", str(mroot.parent.parent.parent), mroot.name])
    deps: dict[str, list[str]] = {}
    for line in dep.read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[Path(path).name.removesuffix(".ko")] = [path, *rest.split()]
    builtin = {Path(p).name.removesuffix(".ko")
               for p in (mroot / "modules.builtin").read_text().split()}
    wanted: set[str] = set()
    for name in MODULES:
        entry = deps.get(name) or deps.get(name.replace("_", "-"))
        if entry is None and name in builtin:
            continue
        if entry is None:
            raise DriverError(f"kernel module {name} is not in the guest kernel package")
        wanted.update(entry)
    return sorted(mroot / p for p in wanted)


def _digest(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{int(st.st_mtime)}:{st.st_mode & 0o777:o}"


def _write_initrd(dest: Path, files: dict[str, Path], init: bytes, kdir: Path,
                  abi: str) -> None:
    with tempfile.TemporaryDirectory(prefix="fate-vmimg-") as tmpd:
        # modules.dep for busybox modprobe: depmod over the modules the guest carries.
        mtree = Path(tmpd) / "lib" / "modules" / abi
        for d, ko in files.items():
            if d.startswith("lib/modules/"):
                t = Path(tmpd) / d
                t.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(ko, t)
        for meta in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
            if (kdir / "lib" / "modules" / abi / meta).is_file():
                shutil.copy(kdir / "lib" / "modules" / abi / meta, mtree / meta)
        _run(["depmod", "-b", tmpd, abi])
        index = {f"lib/modules/{abi}/{f.name}": f.read_bytes()
                 for f in sorted(mtree.iterdir()) if f.is_file() and f.name.startswith("modules.")
                 and not f.name.endswith(".bin")}
    buf = io.BytesIO()
    w = CpioWriter(buf)
    dirs: set[str] = set()
    entries: dict[str, bytes | Path] = {**files, **index, "init": init}
    for d in ("dev", "proc", "sys", "run", "tmp", "nf", "sbin", "usr/bin", "usr/sbin",
              "etc", "var", "root"):
        dirs.add(d)
    for path in entries:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    for d in sorted(dirs):
        w.directory(d)
    # Busybox installs its applets at boot (/init); these few are needed before that.
    w.symlink("bin/sh", "busybox")
    w.symlink("sbin/modprobe", "../bin/busybox")
    w.symlink("usr/bin/python3", "python3.11")
    w.symlink("bin/bash", "../usr/bin/bash")
    for name in XTABLES_NAMES:
        w.symlink(f"usr/sbin/{name}", "xtables-nft-multi")
    for path in sorted(entries):
        src: bytes | Path = entries[path]
        data = src if isinstance(src, bytes) else src.read_bytes()
        mode = 0o755 if path == "init" or (isinstance(src, Path) and os.access(src, os.X_OK)) \
            else 0o644
        # Python checks a .pyc against its source's mtime: keep the stdlib's.
        mtime = int(src.stat().st_mtime) if isinstance(src, Path) and "python3" in path else 0
        w.file(path, data, mode, mtime)
    w.trailer()
    tmp = dest.with_suffix(".tmp")
    with open(tmp, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0,
                                              compresslevel=6) as gz:
        gz.write(buf.getvalue())
    os.replace(tmp, dest)
