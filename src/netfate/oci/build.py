"""Building the catalogue's NF images, reproducibly, from the host's Debian packages.

An NF's image is a minimal rootfs holding only what its lifecycle scripts run: busybox-static
(the shell utilities, and the container's idle process), bash, the tools its descriptor's
capabilities name (nft, conntrack, tc, ip, ...), each with the shared libraries `ldd` lists,
and, for an NF with Python helpers, python3 with just the standard-library modules those
helpers import. It is written as one layer tar (sorted entries, owner 0, every mtime
SOURCE_DATE_EPOCH, gzip without a timestamp) in an OCI image layout, so the same host
packages give the same digest (the reproducible-builds.org SOURCE_DATE_EPOCH convention).
The image then goes through the same verification as a user's (netfate.oci.layout) into the
node's store, from which umoci unpacks it.
"""

from __future__ import annotations

import ast
import contextlib
import datetime
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from netfate.drivers.capabilities import TOOLS
from netfate.errors import DriverError, InvalidInput, NotFound
from netfate.oci import build_cache
from netfate.oci.build_cache import DEFAULT_CACHE
from netfate.oci.layout import CONFIG, IDLE_CMD, LAYER_TGZ, MANIFEST, REF_NAME
from netfate.oci.store import ImageInfo, ImageStore, image_tag

BUSYBOX = "/bin/busybox"
PYTHON = "/usr/bin/python3.11"
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PY_CODECS = ("encodings.ascii", "encodings.latin_1", "encodings.utf_8")
# Mount points the runtime needs on a read-only root, and where the driver binds the NF's
# bundle and directories (netfate.drivers.container_spec).
DIRS = ("dev", "proc", "sys", "tmp", "run", "nf", "etc", "root", "var", "usr/bin", "usr/sbin",
        "usr/lib", "usr/lib64")
ROOT_LINKS = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}
ETC_FILES = ("/etc/protocols", "/etc/services")
# What a capability needs beyond its TOOLS executable: iptables' restore commands (names
# xtables-nft-multi dispatches on) and its extensions, which it dlopen()s (ldd misses them);
# iproute2's bridge(8) (the NAT's neighbour helper reads the bridge's fdb with it).
# strongSwan: the daemon and its control tool, and the plugins charon loads (dlopen(), so
# ldd misses them; the VPN's strongswan.conf names exactly these: catalogue/vpn/files/
# swan.py PLUGINS), each with the libraries it loads (openssl's libcrypto, gmp's libgmp).
EXTRA_EXES = {"iptables": ("iptables-restore", "ip6tables", "ip6tables-restore"),
              "iproute2": ("bridge",),
              "strongswan": ("charon-systemd", "swanctl")}
EXTRA_DIRS = {"iptables": "/usr/lib/*/xtables"}
STRONGSWAN_PLUGINS = ("random", "nonce", "openssl", "aes", "sha1", "sha2", "hmac", "gcm", "gmp",
                      "kdf", "pem", "pkcs1", "x509", "pubkey", "kernel-libipsec",
                      "kernel-netlink", "socket-default", "vici")
EXTRA_LIBS = {"strongswan": (*(f"/usr/lib/ipsec/plugins/libstrongswan-{p}.so"
                                for p in STRONGSWAN_PLUGINS),
                              # glibc dlopen()s it when a thread is cancelled (charon's
                              # and swanctl's threads are): without it they abort
                              "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1")}
_LDD_LINE = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")


@dataclass
class Rootfs:
    """What the layer holds: path in the image -> host file (files), link target (links)."""

    files: dict[str, Path] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    data: dict[str, bytes] = field(default_factory=dict)

    def add_file(self, host: Path, dest: str | None = None) -> None:
        dest = dest or _canonical(host)
        self.files.setdefault(dest, host.resolve())

    def add_binary(self, exe: Path) -> None:
        self.add_file(exe)
        if exe.resolve() != exe:  # e.g. python3 -> python3.11: keep the name too
            self.links.setdefault(_canonical(exe), os.path.basename(exe.resolve()))
            self.add_file(exe.resolve())
        for lib in shared_libraries(exe):
            self.add_file(lib)


def _canonical(p: Path) -> str:
    """The path in the image: the real directory (merged /usr) plus the file's own name."""
    return (Path(os.path.realpath(p.parent)) / p.name).as_posix().lstrip("/")


def shared_libraries(exe: Path) -> list[Path]:
    """The shared libraries (and the dynamic loader) `ldd` says `exe` loads."""
    cp = subprocess.run(["ldd", str(exe)], capture_output=True, text=True,  # noqa: S603
                        timeout=30, check=False)
    if cp.returncode != 0:
        return []  # statically linked
    return [Path(m.group(1)) for line in cp.stdout.splitlines()
            if (m := _LDD_LINE.search(line.strip()))]


def python_imports(files: list[Path]) -> list[str]:
    """The standard-library modules the helpers import (top-level names)."""
    names: set[str] = set()
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return sorted(n for n in names if n in sys.stdlib_module_names)


def python_files(modules: list[str]) -> list[Path]:
    """Every file Debian's python3 loads to import `modules` (startup and site included)."""
    code = ("import sys, json\n" + "".join(f"import {m}\n" for m in modules) +
            "print(json.dumps(sorted({getattr(m, '__file__', None) or '' for m in "
            "list(sys.modules.values())} - {''})))")
    cp = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True,  # noqa: S603
                        timeout=60, check=False)
    if cp.returncode != 0:
        raise DriverError(f"python3 cannot import {modules}: {cp.stderr.strip()[-300:]}")
    lib = Path(PYTHON).parent.parent / "lib" / "python3.11"
    out = [Path(p) for p in json.loads(cp.stdout)]
    return [p for p in out if lib in p.parents and p.suffix in (".py", ".so")] + [lib / "os.py"]


def borrowed(src: Path) -> list[Path]:
    """The files the NF whose bundle source is `src` ships from another NF's folder
    (catalogue.BORROWED: the VPN runs the NAT's arpd.py)."""
    from netfate import catalogue

    return [src.parent / nf / "files" / f
            for nf, f in catalogue.BORROWED.get(src.name, {}).values()]


def plan_rootfs(bundle_dir: Path, capabilities: list[str]) -> Rootfs:
    """The rootfs of the NF whose bundle source is `bundle_dir`, with tools for
    `capabilities` (the descriptor's). DriverError if a needed host tool is missing."""
    fs = Rootfs()
    busybox = Path(BUSYBOX)
    if not busybox.is_file():
        raise DriverError("busybox-static is not installed (/bin/busybox)")
    fs.add_file(busybox, "usr/bin/busybox")
    wanted = ["bash", "iproute2", *capabilities]
    for cap in dict.fromkeys(wanted):
        tool = TOOLS.get(cap)  # (kernel: and hardware: capabilities name no tool)
        if tool is None or cap == "python3":
            continue
        exes = (tool,) if isinstance(tool, str) else tool
        found = next((w for w in (shutil.which(e, path=SBIN_PATH) for e in exes) if w), None)
        if found is None:
            raise DriverError(f"host tool {' or '.join(exes)!r} (capability {cap}) is not "
                              "installed")
        fs.add_binary(Path(found))
        for extra in EXTRA_EXES.get(cap, ()):
            if (w := shutil.which(extra, path=SBIN_PATH)) is not None:
                fs.add_binary(Path(w))
        for lib in EXTRA_LIBS.get(cap, ()):
            if not Path(lib).is_file():
                raise DriverError(f"{lib} (capability {cap}) is not installed")
            fs.add_binary(Path(lib))
        if cap in EXTRA_DIRS:
            for f in sorted(Path("/").glob(EXTRA_DIRS[cap].lstrip("/") + "/*")):
                if f.is_file():
                    fs.add_file(f, f.as_posix().lstrip("/"))
    if "python3" in capabilities:
        fs.add_binary(Path("/usr/bin/python3"))
        helpers = sorted(bundle_dir.rglob("*.py"))
        shared = bundle_dir.parent / "_shared"
        helpers += sorted(shared.glob("*.py")) if shared.is_dir() else []
        helpers += borrowed(bundle_dir)
        # the codecs a helper names by string (open(..., encoding="ascii")): no import shows
        for f in python_files([*python_imports(helpers), *PY_CODECS]):
            if f.is_file():
                fs.add_file(f, f.as_posix().lstrip("/"))
        fs.data.setdefault("usr/lib/python3.11/lib-dynload/.keep", b"")
    for etc in ETC_FILES:
        if Path(etc).is_file():
            fs.add_file(Path(etc), etc.lstrip("/"))
    for f in sorted(Path("/etc/iproute2").glob("*")) if Path("/etc/iproute2").is_dir() else []:
        if f.is_file():
            fs.add_file(f, f.as_posix().lstrip("/"))
    fs.data["etc/passwd"] = b"root:x:0:0:root:/root:/bin/sh\n"
    fs.data["etc/group"] = b"root:x:0:\n"
    _busybox_applets(fs)
    return fs


def _busybox_applets(fs: Rootfs) -> None:
    cp = subprocess.run([BUSYBOX, "--list-full"], capture_output=True, text=True,  # noqa: S603
                        timeout=10, check=False)
    taken = {os.path.basename(p) for p in fs.files} | {os.path.basename(p) for p in fs.links}
    for line in sorted(cp.stdout.split()):
        name = os.path.basename(line)
        if name in taken or name == "busybox":
            continue
        taken.add(name)
        d = "usr/sbin" if "sbin" in line else "usr/bin"
        fs.links[f"{d}/{name}"] = "busybox" if d == "usr/bin" else "../bin/busybox"


def layer_tar(fs: Rootfs, epoch: int) -> bytes:
    """The rootfs as one tar: sorted entries, owner 0, mtime `epoch`, parents first."""
    entries: dict[str, tuple[str, object]] = {}
    for d in DIRS:
        entries[d] = ("dir", None)
    for name, target in ROOT_LINKS.items():
        entries[name] = ("link", target)
    for dest, host in fs.files.items():
        entries[dest] = ("file", host)
    for dest, blob in fs.data.items():
        entries[dest] = ("data", blob)
    for dest, target in fs.links.items():
        entries.setdefault(dest, ("link", target))
    for dest in list(entries):  # every parent directory, explicitly
        parts = dest.split("/")
        for i in range(1, len(parts)):
            entries.setdefault("/".join(parts[:i]), ("dir", None))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            kind, src = entries[name]
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = epoch, 0, 0, "", ""
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
                tar.addfile(info)
            elif kind == "link":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, str(src), 0o777
                tar.addfile(info)
            else:
                data = src if isinstance(src, bytes) else Path(str(src)).read_bytes()
                mode = 0o644 if isinstance(src, bytes) else os.stat(str(src)).st_mode & 0o755
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_layout(dest: Path, tar: bytes, tag: str, epoch: int, cmd: list[str],
                 labels: dict[str, str] | None = None) -> str:
    """An OCI image layout at `dest` holding one image (tag `tag`) of the single layer `tar`
    (config Labels `labels`); returns the manifest's digest. Deterministic: the same inputs
    give the same bytes."""
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, compresslevel=6) as g:
        g.write(tar)
    layer = gz.getvalue()
    created = datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = {
        "created": created, "architecture": "amd64", "os": "linux",
        "config": {"Env": [f"PATH={SBIN_PATH}"], "Cmd": cmd, "WorkingDir": "/",
                   **({"Labels": dict(labels)} if labels else {})},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(tar).hexdigest()}"]},
        "history": [{"created": created, "created_by": "netfate images build"}],
    }
    cbytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    manifest = {
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": _digest(cbytes), "size": len(cbytes)},
        "layers": [{"mediaType": LAYER_TGZ, "digest": _digest(layer), "size": len(layer)}],
    }
    mbytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for data in (layer, cbytes, mbytes):
        (blobs / _digest(data).split(":")[1]).write_bytes(data)
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"mediaType": MANIFEST, "digest": _digest(mbytes),
                            "size": len(mbytes), "annotations": {REF_NAME: tag}}]}
    (dest / "index.json").write_text(json.dumps(index, sort_keys=True))
    return _digest(mbytes)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# Bump when what goes into an image changes (plan_rootfs, layer_tar): an image built by an
# older recipe, or from another bundle, is rebuilt under the same tag.
RECIPE = "5"
LABEL = "org.netfate.image-source"


def source_key(src: Path, capabilities: list[str]) -> str:
    """What an NF's image is built from, as one digest: the recipe, the capabilities, and
    every file of the bundle source and the shared helpers (path and content)."""
    h = hashlib.sha256(f"recipe {RECIPE}\ncaps {sorted(capabilities)}\n".encode())
    shared = src.parent / "_shared"
    for root in (src, shared):
        for f in sorted(root.rglob("*")) if root.is_dir() else []:
            if f.is_file() and "__pycache__" not in f.parts:
                h.update(f"{f.relative_to(root.parent).as_posix()}\n".encode())
                h.update(hashlib.sha256(f.read_bytes()).digest())
    for f in borrowed(src):
        h.update(f"borrowed {f.relative_to(src.parent).as_posix()}\n".encode())
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return "sha256:" + h.hexdigest()


def build_nf_image(store: ImageStore, name: str, epoch: int = 0, *, force: bool = False,
                   cache: Path | None = DEFAULT_CACHE) -> ImageInfo:
    """Build catalogue NF `name`'s image into `store` (tag ``<name>-<version>``), unless one
    built from the same sources is there already, or in the build cache `cache` (None: no
    cache; build_cache.py). `force`: build and re-tag anyway (the same host packages give
    the same digest). NotFound for an unknown NF; DriverError if a host tool is missing."""
    from netfate import catalogue, safe_yaml
    from netfate.bundle import DESCRIPTOR, DESCRIPTOR_LIMITS
    from netfate.descriptor import parse_descriptor

    src = catalogue.source_dir(name)
    if not (src / DESCRIPTOR).is_file():
        raise NotFound(f"no catalogue NF {name!r}")
    desc = parse_descriptor(safe_yaml.load((src / DESCRIPTOR).read_bytes(), DESCRIPTOR,
                                           DESCRIPTOR_LIMITS), DESCRIPTOR)
    tag = image_tag(desc.name, desc.version)
    key = source_key(src, desc.capabilities)
    if not force and store.has(tag):
        labels = (store.config(tag).get("config") or {}).get("Labels") or {}
        if labels.get(LABEL) == key:
            return store.resolve(tag)
    if cache is None:
        return build_image(store, src, tag, desc.capabilities, epoch, {LABEL: key})
    ckey = build_cache.cache_key(key, epoch)
    with build_cache.locked(cache):
        hit = None if force else build_cache.lookup(cache, tag, ckey)
        if hit is not None:
            with contextlib.suppress(InvalidInput, NotFound):  # damaged: built again below
                return store.import_image(hit, tag, tag)
        with build_cache.new_entry(cache, tag, ckey) as layout:
            write_image(layout, src, tag, desc.capabilities, epoch, {LABEL: key})
            return store.import_image(layout, tag, tag)


def write_image(dest: Path, src: Path, tag: str, capabilities: list[str], epoch: int = 0,
                labels: dict[str, str] | None = None) -> str:
    """Write the image of the NF bundle source `src` (tools for `capabilities`) as an OCI
    layout at `dest`; returns its manifest digest."""
    tar = layer_tar(plan_rootfs(src, capabilities), epoch)
    return write_layout(dest, tar, tag, epoch, IDLE_CMD, labels)


def build_image(store: ImageStore, src: Path, tag: str, capabilities: list[str],
                epoch: int = 0, labels: dict[str, str] | None = None) -> ImageInfo:
    """Build the image of the NF bundle source `src` (tools for `capabilities`) and store it,
    verified, as `tag`."""
    with tempfile.TemporaryDirectory(prefix=".build-") as tmp:
        write_image(Path(tmp), src, tag, capabilities, epoch, labels)
        return store.import_image(Path(tmp), tag, tag)


def container_nfs() -> list[str]:
    """The catalogue NFs offering the container flavour: the images a node needs."""
    from netfate import catalogue, safe_yaml
    from netfate.bundle import DESCRIPTOR, DESCRIPTOR_LIMITS
    from netfate.descriptor import parse_descriptor

    out = []
    for name in catalogue.NAMES:
        src = catalogue.source_dir(name) / DESCRIPTOR
        desc = parse_descriptor(safe_yaml.load(src.read_bytes(), DESCRIPTOR, DESCRIPTOR_LIMITS),
                                DESCRIPTOR)
        if "container" in desc.flavours:
            out.append(name)
    return out
