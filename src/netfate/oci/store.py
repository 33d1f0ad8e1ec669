"""The node's local image store: one OCI image layout holding every image by tag, plus each
image's rootfs unpacked once (by umoci) and shared read-only by its containers.

Layout under `root` (``<run dir>/images``): ``layout/`` (oci-layout, index.json,
blobs/sha256/...), ``rootfs/<manifest hex>/`` (umoci's runtime bundle: rootfs/, umoci.json).
Nothing enters the layout unverified (netfate.oci.layout.verify), and an image is verified
again, from the store, right before umoci unpacks it. Writes are atomic (temporary name,
then rename) and serialized by a lock file, so concurrent agents on a node are safe.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netfate.errors import DriverError, InvalidInput, NotFound
from netfate.oci.layout import (
    INDEX,
    MANIFEST,
    REF_NAME,
    ArchiveSource,
    DirSource,
    Source,
    VerifiedImage,
    check_tag,
    digest_hex,
    verify,
)

DISK_BUDGET_MB = 512  # an image's size on the node, compressed or expanded (MiB)
UMOCI = "umoci"
UNPACK_TIMEOUT = 120.0  # s
SIZE = "io.netfate.image.size"  # annotation in the store's index: bytes of the image's blobs


@dataclass(frozen=True)
class ImageInfo:
    tag: str
    digest: str  # the manifest's
    size: int  # bytes of blobs


class ImageStore:
    """Images by tag. `budget` is the node's disk budget for one image, in bytes."""

    def __init__(self, root: Path, budget: int = DISK_BUDGET_MB * 1024 * 1024) -> None:
        self.root = root
        self.layout = root / "layout"
        self.unpacked = root / "rootfs"
        self.budget = budget

    # -- bookkeeping ----------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def _index(self) -> dict[str, Any]:
        """The store's index.json. DriverError naming it if it cannot be read or is not an
        OCI index (an object whose manifests are a list of objects)."""
        where = f"image store index {self.layout}/index.json"
        try:
            doc = json.loads((self.layout / "index.json").read_text())
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": INDEX, "manifests": []}
        except (OSError, ValueError) as exc:  # a directory there, not JSON, not UTF-8
            raise DriverError(f"{where} is corrupt: {exc}") from None
        if not isinstance(doc, dict):
            raise DriverError(f"{where} is corrupt: not a JSON object")
        manifests = doc.setdefault("manifests", [])
        if not isinstance(manifests, list) or not all(isinstance(m, dict) for m in manifests):
            raise DriverError(f"{where} is corrupt: its manifests are not a list of objects")
        return doc

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    # -- adding ---------------------------------------------------------------------------
    def add(self, img: VerifiedImage, tag: str) -> ImageInfo:
        """Store a verified image under `tag` (moving the tag if it named another image);
        idempotent."""
        check_tag(tag)
        with self._locked():
            for digest, data in sorted(img.blobs.items()):
                p = self.layout / "blobs" / "sha256" / digest_hex(digest)
                if not p.is_file() or p.stat().st_size != len(data):
                    self._write(p, data)
            self._write(self.layout / "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            index = self._index()
            kept = [m for m in index.get("manifests", [])
                    if (m.get("annotations") or {}).get(REF_NAME) != tag]
            kept.append({"mediaType": MANIFEST, "digest": img.manifest_digest,
                         "size": len(img.blobs[img.manifest_digest]),
                         "annotations": {REF_NAME: tag, SIZE: str(img.size)}})
            kept.sort(key=lambda m: m["annotations"][REF_NAME])
            index["manifests"] = kept
            self._write(self.layout / "index.json",
                        json.dumps(index, sort_keys=True, indent=1).encode())
        return ImageInfo(tag, img.manifest_digest, img.size)

    def import_image(self, path: Path, tag: str, ref: str | None = None) -> ImageInfo:
        """Verify and store a user's image: an OCI layout directory or an oci-archive file
        (`ref`: which of its references; None: its only one). InvalidInput/NotFound as
        netfate.oci.layout.verify; nothing is stored then."""
        src: Source = DirSource(path) if path.is_dir() else ArchiveSource(path, self.budget)
        return self.add(verify(src, ref, self.budget), tag)

    # -- reading --------------------------------------------------------------------------
    def list(self) -> list[ImageInfo]:
        out = []
        for m in self._index().get("manifests", []):
            tag = (m.get("annotations") or {}).get(REF_NAME)
            if isinstance(tag, str):
                size = (m.get("annotations") or {}).get(SIZE, "0")
                out.append(ImageInfo(tag, str(m.get("digest")),
                                     int(size) if str(size).isdigit() else 0))
        return sorted(out, key=lambda i: i.tag)

    def resolve(self, tag: str) -> ImageInfo:
        """The image tagged `tag`; NotFound naming the tags there are."""
        for info in self.list():
            if info.tag == tag:
                return info
        have = ", ".join(i.tag for i in self.list()) or "none"
        raise NotFound(f"no image {tag!r} in the node's image store (have: {have}); build it "
                       "with 'netfate images build' or import one")

    def remove(self, tag: str) -> bool:
        """Untag (blobs stay until the store is removed); a no-op if absent. Whether the tag
        was there. InvalidInput for what is not a tag (check_tag), as `add` refuses it."""
        check_tag(tag)
        if not self.layout.is_dir():
            return False  # no store yet: nothing to untag, nothing made
        with self._locked():
            index = self._index()
            manifests = index.get("manifests", [])
            kept = [m for m in manifests
                    if (m.get("annotations") or {}).get(REF_NAME) != tag]
            if len(kept) == len(manifests):
                return False
            index["manifests"] = kept
            self._write(self.layout / "index.json",
                        json.dumps(index, sort_keys=True, indent=1).encode())
        return True

    def config(self, tag: str) -> dict[str, Any]:
        """The image's config (its Env, Entrypoint, Cmd under "config")."""
        info = self.resolve(tag)
        src = DirSource(self.layout)
        manifest = json.loads(src.read(f"blobs/sha256/{digest_hex(info.digest)}", 1 << 20))
        cfg = json.loads(src.read(f"blobs/sha256/{digest_hex(manifest['config']['digest'])}",
                                  1 << 20))
        return cfg if isinstance(cfg, dict) else {}

    # -- unpacking ------------------------------------------------------------------------
    def rootfs(self, tag: str) -> Path:
        """The image's rootfs, unpacked once by umoci after verifying the image again from
        the store; shared read-only by every container of the image. DriverError if umoci
        fails; InvalidInput if the stored image no longer verifies."""
        info = self.resolve(tag)
        dest = self.unpacked / digest_hex(info.digest)
        if (dest / "rootfs").is_dir():
            return dest / "rootfs"
        with self._locked():
            if (dest / "rootfs").is_dir():
                return dest / "rootfs"
            img = verify(DirSource(self.layout), tag, self.budget)
            if img.manifest_digest != info.digest:
                raise DriverError(f"image {tag} changed while being unpacked; retry")
            self.unpacked.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=self.unpacked))
            bundle = tmp / "bundle"
            try:
                cp = subprocess.run(  # noqa: S603 - fixed argv
                    [UMOCI, "unpack", "--image", f"{self.layout}:{tag}", str(bundle)],
                    capture_output=True, text=True, timeout=UNPACK_TIMEOUT, check=False)
                if cp.returncode != 0:
                    raise DriverError(f"umoci unpack of {tag} failed: {cp.stderr.strip()[-500:]}")
                os.rename(bundle, dest)
            except subprocess.TimeoutExpired:
                raise DriverError(f"umoci unpack of {tag} timed out") from None
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return dest / "rootfs"

    def has(self, tag: str) -> bool:
        try:
            self.resolve(tag)
        except NotFound:
            return False
        return True


def image_tag(nf: str, version: str) -> str:
    """The store's tag for a catalogue NF's image: ``<nf>-<version>``."""
    return check_tag(f"{nf}-{version}")


def check_budget(mb: int) -> int:
    if mb < 1:
        raise InvalidInput("the disk budget must be at least 1 MiB")
    return mb * 1024 * 1024
