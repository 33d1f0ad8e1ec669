"""NF bundles: a .tgz with descriptor.yaml and lifecycle scripts, identified by sha256.

Reading refuses anything but plain files and directories under the bundle root: no '..',
no absolute paths, no links, no devices, no malformed headers; and it bounds size, expanded
size and member count (netfate.archive). The descriptor is read with bounded YAML
(netfate.safe_yaml).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import re
import shutil
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from netfate import archive, safe_yaml
from netfate.archive import Member
from netfate.descriptor import LIFECYCLE, REQUIRED_SCRIPTS, Descriptor, parse_descriptor
from netfate.errors import InvalidInput, NotFound

MAX_BUNDLE_BYTES = 16 * 1024 * 1024
MAX_MEMBERS = 512
# A descriptor is a few KiB (the catalogue's are 1-3 KiB); these bounds keep reading and
# checking one (pure-Python YAML, then the JSON Schema check) around a second at worst.
DESCRIPTOR_LIMITS = safe_yaml.Limits(max_bytes=64 * 1024, max_nodes=10_000)
_SHA256 = re.compile(r"[0-9a-f]{64}")  # a stored bundle's name: its digest, lower case
LIMITS = archive.Limits(max_compressed=MAX_BUNDLE_BYTES, max_expanded=4 * MAX_BUNDLE_BYTES,
                        max_members=MAX_MEMBERS, max_member_bytes=MAX_BUNDLE_BYTES)
DESCRIPTOR = "descriptor.yaml"


@dataclass(frozen=True)
class Bundle:
    sha256: str
    root: Path
    descriptor: Descriptor

    def script(self, action: str) -> Path | None:
        p = self.root / "scripts" / action
        return p if p.is_file() else None


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_bundle(src: Path, extra: dict[str, Path] | None = None) -> bytes:
    """A reproducible .tgz of a bundle directory (sorted, fixed mtimes and owners), plus
    `extra` files (archive name -> source path), e.g. helpers shared by several bundles."""
    entries = {p.relative_to(src).as_posix(): p for p in src.rglob("*")}
    entries.update(extra or {})
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for rel, path in sorted(entries.items()):
                if "__pycache__" in path.parts:
                    continue
                info = tar.gettarinfo(str(path), arcname=rel)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                if path.is_file():
                    with path.open("rb") as fh:
                        tar.addfile(info, fh)
                elif path.is_dir():
                    tar.addfile(info)
    return buf.getvalue()


def _descriptor_text(tar: bytes, members: dict[str, Member]) -> bytes:
    m = members.get(DESCRIPTOR)
    if m is None or m.kind != "file":
        raise InvalidInput(f"bundle has no {DESCRIPTOR} at its root")
    return tar[m.offset:m.offset + m.size]


def inspect_bundle(data: bytes) -> tuple[Descriptor, list[Member]]:
    """Validate a bundle's archive and descriptor without writing anything.

    Bounded in time and memory by construction (netfate.archive: bounded gunzip, strict
    header walk; netfate.safe_yaml: bounded YAML; the config-schema checked whole). Raises
    InvalidInput naming the first problem."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise InvalidInput(f"bundle is {len(data)} bytes; the limit is {MAX_BUNDLE_BYTES}")
    tar, members = archive.read_tgz(data, LIMITS)
    names = {m.name: m for m in members}
    raw = safe_yaml.load(_descriptor_text(tar, names), DESCRIPTOR, DESCRIPTOR_LIMITS)
    desc = parse_descriptor(raw, DESCRIPTOR)
    scripts = {n.removeprefix("scripts/") for n, m in names.items()
               if n.startswith("scripts/") and m.kind == "file"}
    unknown = scripts - set(LIFECYCLE)
    if unknown:
        raise InvalidInput(f"bundle has unknown lifecycle scripts: {sorted(unknown)}")
    missing = [s for s in REQUIRED_SCRIPTS if s not in scripts]
    if missing:
        raise InvalidInput(f"bundle lacks required scripts: {missing}")
    if desc.state.exportable:
        lacking = [s for s in ("export-state", "import-state") if s not in scripts]
        if lacking:
            raise InvalidInput(f"descriptor says state is exportable but {lacking} are missing")
    return desc, members


class BundleStore:
    """Bundles by sha256, extracted once under root/<sha256>/."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # Parsed descriptors by sha256, with the file's identity when parsed: a bundle's
        # content never changes (it is named by its hash), and parsing and checking its
        # descriptor costs ~20-50 ms on a small CPE, on every NF action's path.
        self._parsed: dict[str, tuple[tuple[int, int], Descriptor]] = {}

    def add(self, data: bytes, expected_sha256: str | None = None) -> Bundle:
        sha = sha256_of(data)
        if expected_sha256 is not None and expected_sha256.lower() != sha:
            raise InvalidInput(f"bundle sha256 is {sha}, not the expected {expected_sha256}")
        dest = self.root / sha
        if (dest / DESCRIPTOR).is_file():
            return self.get(sha)
        desc, members = inspect_bundle(data)
        tar = archive.gunzip(data, LIMITS)  # inspected: the same bytes, read the same way
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".fate-bundle-", dir=self.root))
        try:
            for m in members:
                if not m.name:
                    continue
                target = tmp / m.name
                if m.kind == "dir":
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar[m.offset:m.offset + m.size])
                executable = m.name.startswith("scripts/") or m.mode & stat.S_IXUSR
                os.chmod(target, 0o755 if executable else 0o644)
            (tmp / ".sha256").write_text(sha)
            try:
                os.rename(tmp, dest)
            except OSError:
                if not (dest / DESCRIPTOR).is_file():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return Bundle(sha, dest, desc)

    def get(self, sha256: str) -> Bundle:
        """The stored bundle `sha256` (64 hex digits, either case). NotFound for any other
        reference (a path, say: the digest names a directory under the store, never one
        elsewhere) and for a digest the store does not hold."""
        sha = sha256.lower()
        if not _SHA256.fullmatch(sha):
            raise NotFound(f"no bundle with sha256 {sha256[:80]!r} (not 64 hex digits)")
        dest = self.root / sha
        try:
            st = (dest / DESCRIPTOR).stat()
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            raise NotFound(f"no bundle with sha256 {sha256}")
        ident = (st.st_ino, st.st_mtime_ns)
        cached = self._parsed.get(sha)
        if cached is not None and cached[0] == ident:
            return Bundle(sha, dest, cached[1])
        raw = safe_yaml.load((dest / DESCRIPTOR).read_bytes(), f"bundle {sha256[:12]}",
                             DESCRIPTOR_LIMITS)
        desc = parse_descriptor(raw, f"bundle {sha256[:12]}")
        self._parsed[sha] = (ident, desc)
        return Bundle(sha, dest, desc)

    def list(self) -> list[Bundle]:
        if not self.root.is_dir():
            return []
        out = []
        for d in sorted(self.root.iterdir()):
            if _SHA256.fullmatch(d.name) and (d / DESCRIPTOR).is_file():
                with contextlib.suppress(Exception):
                    out.append(self.get(d.name))
        return out

    def remove(self, sha256: str) -> None:
        """Remove the stored bundle `sha256`; a no-op for one the store does not hold.
        InvalidInput for a reference that is not 64 hex digits (nothing is removed)."""
        sha = sha256.lower()
        if not _SHA256.fullmatch(sha):
            raise InvalidInput(f"bundle sha256 {sha256[:80]!r} is not 64 hex digits")
        shutil.rmtree(self.root / sha, ignore_errors=True)
