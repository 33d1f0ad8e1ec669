"""Reading and verifying an OCI image before anything of it is unpacked. Pure but for reading
the source's files.

An image comes as an OCI image layout (a directory: oci-layout, index.json, blobs/sha256/...;
OCI image spec "image-layout") or as an oci-archive (the same as one tar, e.g. from
``podman save --format oci-archive``). `verify` reads the manifest the reference names, then
checks every blob against its sha256 digest and declared size, every layer's uncompressed
sha256 against the config's diff_ids, and every layer entry (netfate.oci.layers); the whole
image, compressed or expanded, must fit the node's disk budget. Any failure is an
InvalidInput naming the blob or entry, and nothing is written.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from netfate import archive
from netfate.errors import InvalidInput, NotFound
from netfate.oci.layers import LayerLimits, check_layer

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_TGZ = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
# The process of the catalogue's images (~100 KiB): idle, it reads nothing at its start.
IDLE_CMD = ["/usr/bin/busybox", "sleep", "inf"]
MAX_JSON = 1024 * 1024  # index.json, a manifest or a config: a few KiB in practice
_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")


def check_tag(tag: str) -> str:
    """`tag` if it is an OCI reference name ([A-Za-z0-9_][A-Za-z0-9._-]{0,127}); else
    InvalidInput."""
    if not isinstance(tag, str) or not _TAG.fullmatch(tag):  # match: '$' allows a "\n"
        shown = (f"{tag[:64]!r}... ({len(tag)} characters)" if isinstance(tag, str)
                 and len(tag) > 64 else repr(tag))  # a 5,000-character tag is not echoed
        raise InvalidInput(f"image tag {shown} must be [A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}")
    return tag


def digest_hex(digest: object) -> str:
    """The hex of a ``sha256:<64 hex>`` digest; InvalidInput for anything else."""
    m = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if m is None:
        raise InvalidInput(f"digest {str(digest)[:80]!r} is not sha256:<64 lowercase hex>")
    return m.group(1)


class Source(Protocol):
    """Where an image's files are: `read` returns a file's bytes, refusing more than
    `max_bytes`; NotFound if it is absent."""

    def read(self, name: str, max_bytes: int) -> bytes: ...


class DirSource:
    """An OCI image layout directory. Only regular files are read (never through a link)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, name: str, max_bytes: int) -> bytes:
        p = self.root / name
        try:
            # O_NONBLOCK: opening a fifo must not wait for a writer (it is refused below)
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            raise NotFound(f"image layout {self.root} has no {name}") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # O_NOFOLLOW's answer for a symbolic link
                raise InvalidInput(f"image layout {self.root}: {name} is a symbolic link; "
                                   "a layout's files are read only as regular files") from None
            raise InvalidInput(f"image layout {self.root}: cannot read {name}: "
                               f"{exc.strerror or exc}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # checked before fdopen, which raises on a directory
            os.close(fd)
            raise InvalidInput(f"image layout {self.root}: {name} is not a regular file")
        with os.fdopen(fd, "rb") as fh:
            if st.st_size > max_bytes:
                raise InvalidInput(f"image layout {self.root}: {name} is {st.st_size} bytes; "
                                   f"the limit is {max_bytes}")
            return fh.read(max_bytes + 1)


class ArchiveSource:
    """An oci-archive: an OCI image layout as one (uncompressed) tar, read with the strict
    tar reader (netfate.archive: files and directories only)."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        try:  # O_NONBLOCK: a fifo must not block the open (it is refused below)
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            raise NotFound(f"cannot read image archive {path}: {exc}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # /dev/zero or a fifo would never end; a directory
            os.close(fd)                   # would make fdopen raise
            raise InvalidInput(f"image archive {path} is not a regular file")
        with os.fdopen(fd, "rb") as fh:
            if st.st_size > max_bytes:
                raise InvalidInput(f"image archive {path} is {st.st_size} bytes; the disk "
                                   f"budget is {max_bytes}")
            self.tar = fh.read(max_bytes + 1)
        if len(self.tar) > max_bytes:
            raise InvalidInput(f"image archive {path} grew past the disk budget {max_bytes}")
        limits = archive.Limits(max_compressed=max_bytes, max_expanded=max_bytes,
                                max_members=10_000, max_member_bytes=max_bytes)
        self.members = {m.name: m for m in archive.read_tar(self.tar, limits)
                        if m.kind == "file"}

    def read(self, name: str, max_bytes: int) -> bytes:
        m = self.members.get(name)
        if m is None:
            raise NotFound(f"image archive has no {name}")
        if m.size > max_bytes:
            raise InvalidInput(f"image archive: {name} is {m.size} bytes; the limit is "
                               f"{max_bytes}")
        return self.tar[m.offset:m.offset + m.size]


@dataclass
class VerifiedImage:
    """An image whose every blob was checked; `blobs` holds them by digest, ready to store."""

    manifest_digest: str
    manifest: dict[str, Any]
    config: dict[str, Any]
    size: int  # bytes of its blobs (compressed)
    expanded: int  # bytes its layers unpack to, at most
    blobs: dict[str, bytes] = field(default_factory=dict)


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise InvalidInput(f"{what} is not JSON: {exc}") from None
    except RecursionError:  # e.g. 200k nested '[' fit in MAX_JSON
        raise InvalidInput(f"{what} is nested too deeply") from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"{what} is not a JSON object")
    return doc


def _blob(src: Source, desc: object, what: str, max_bytes: int) -> tuple[str, bytes]:
    if not isinstance(desc, dict):
        raise InvalidInput(f"{what}: descriptor is not an object")
    hexd = digest_hex(desc.get("digest"))
    size = desc.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidInput(f"{what} {desc.get('digest')}: size must be a non-negative integer")
    if size > max_bytes:
        raise InvalidInput(f"{what} sha256:{hexd} is {size} bytes; that exceeds the disk "
                           f"budget ({max_bytes} bytes left)")
    data = src.read(f"blobs/sha256/{hexd}", size)
    if len(data) != size:
        raise InvalidInput(f"{what} sha256:{hexd}: size is {len(data)}, the manifest says "
                           f"{size}")
    got = hashlib.sha256(data).hexdigest()
    if got != hexd:
        raise InvalidInput(f"{what}: digest mismatch: the manifest says sha256:{hexd}, the "
                           f"blob is sha256:{got}")
    return f"sha256:{hexd}", data


def _ref_name(m: dict[str, Any]) -> object:
    annotations = m.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise InvalidInput("index.json: a manifest's annotations are not an object")
    return annotations.get(REF_NAME)


def _pick(index: dict[str, Any], ref: str | None) -> dict[str, Any]:
    manifests = index.get("manifests")
    if not isinstance(manifests, list) or not manifests:
        raise InvalidInput("index.json lists no manifests")
    if not all(isinstance(m, dict) for m in manifests):
        raise InvalidInput("index.json: a manifest descriptor is not an object")
    found: list[dict[str, Any]] = [m for m in manifests if ref is None or _ref_name(m) == ref]
    if not found:
        names = sorted(str(_ref_name(m))[:80] for m in manifests)
        shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20
                                         else "")
        raise NotFound(f"image has no reference {ref!r} (it has: {shown})")
    if len(found) > 1 and ref is None:
        raise InvalidInput("the image holds several manifests; name one by its reference")
    m = found[0]
    if m.get("mediaType") != MANIFEST:
        raise InvalidInput(f"reference {ref!r} is a {m.get('mediaType')!r}, not an OCI image "
                           "manifest (image indexes are not supported)")
    return m


def _check_process(config: dict[str, Any], cdigest: str) -> None:
    """The config's process (OCI image spec "config": Entrypoint, Cmd, Env are arrays of
    strings), which the container driver runs; InvalidInput otherwise."""
    process = config.get("config")
    if process is None:
        return
    if not isinstance(process, dict):
        raise InvalidInput(f"config {cdigest}: 'config' is not an object")
    for key in ("Entrypoint", "Cmd", "Env"):
        value = process.get(key)
        if value is not None and not (isinstance(value, list)
                                      and all(isinstance(v, str) for v in value)):
            raise InvalidInput(f"config {cdigest}: config.{key} is not an array of strings")


def verify(src: Source, ref: str | None, budget: int,
           limits: LayerLimits | None = None) -> VerifiedImage:
    """Check the image `ref` (None: the only one) of `src` whole; see the module docstring.
    `budget`: bytes the node allows an image (blobs and expanded layers each). InvalidInput
    names what is wrong; NotFound if `ref` or a blob is absent."""
    layout = _json(src.read("oci-layout", 4096), "oci-layout")
    if layout.get("imageLayoutVersion") != "1.0.0":
        raise InvalidInput("oci-layout: imageLayoutVersion is not 1.0.0")
    index = _json(src.read("index.json", MAX_JSON), "index.json")
    mdesc = _pick(index, ref)
    mdigest, mdata = _blob(src, mdesc, "manifest", min(MAX_JSON, budget))
    manifest = _json(mdata, f"manifest {mdigest}")
    if manifest.get("schemaVersion") != 2:
        raise InvalidInput(f"manifest {mdigest}: schemaVersion is not 2")
    left = budget - len(mdata)
    cdigest, cdata = _blob(src, manifest.get("config"), "config", min(MAX_JSON, left))
    config = _json(cdata, f"config {cdigest}")
    left -= len(cdata)
    _check_process(config, cdigest)
    layers = manifest.get("layers")
    rootfs = config.get("rootfs") or {}
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(layers, list) or not isinstance(diff_ids, list) or len(layers) != len(
            diff_ids):
        raise InvalidInput(f"manifest {mdigest}: layers and the config's diff_ids differ")
    img = VerifiedImage(mdigest, manifest, config, len(mdata) + len(cdata), 0,
                        {mdigest: mdata, cdigest: cdata})
    for i, (ldesc, diff_id) in enumerate(zip(layers, diff_ids, strict=True)):
        ldigest, ldata = _blob(src, ldesc, f"layer {i}", left)
        left -= len(ldata)
        kind = ldesc.get("mediaType")
        if kind == LAYER_TGZ:
            room = max(0, budget - img.expanded)
            try:
                tar = archive.gunzip(ldata, archive.Limits(max_compressed=len(ldata),
                                                           max_expanded=room))
            except InvalidInput as exc:
                if "expands to more than" not in str(exc):
                    raise InvalidInput(f"layer {ldigest}: {exc}") from None
                raise InvalidInput(f"layer {ldigest} expands past the disk budget ({budget} "
                                   "bytes for the image)") from None
        elif kind == LAYER_TAR:
            tar = ldata
        else:
            raise InvalidInput(f"layer {ldigest}: media type {kind!r} is not supported")
        if f"sha256:{hashlib.sha256(tar).hexdigest()}" != f"sha256:{digest_hex(diff_id)}":
            raise InvalidInput(f"layer {ldigest}: digest mismatch: its content is not the "
                               f"config's diff_id {diff_id}")
        summary = check_layer(tar, ldigest, limits or LayerLimits())
        img.expanded += summary.expanded_bytes
        if img.expanded > budget:
            raise InvalidInput(f"image expands to more than the disk budget ({budget} bytes)")
        img.size += len(ldata)
        img.blobs[ldigest] = ldata
    return img
