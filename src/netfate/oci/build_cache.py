"""The build cache of the catalogue's NF images: OCI layouts kept across `testbed down`.

The node's image store lives under the run dir, which `testbed down` removes whole, so
without a cache every `testbed up` rebuilt every image: 16 s of 18 on this machine (gzip
alone 10 s). The cache keeps, per tag, the layout last built and the key it was built
from, under /var/cache/netfate/oci by default (beside the VM guest's, vm_image.py): build
output, like apt's, that survives reboots and that `make clean` removes.

The key covers what the image is made of: the bundle sources and recipe (build.source_key),
the SOURCE_DATE_EPOCH, and the host's installed packages (a digest of dpkg's status file), so
an `apt upgrade` of a tool the image carries rebuilds it. A cached layout is imported through
the store's full verification like any image, so a damaged cache is refused, not trusted.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

DEFAULT_CACHE = Path("/var/cache/netfate/oci")
DPKG_STATUS = Path("/var/lib/dpkg/status")
KEY_FILE = "netfate-build-key"


def host_packages() -> str:
    """A digest of the host's installed packages (dpkg's status file), or "none" where
    there is no dpkg database."""
    try:
        return hashlib.sha256(DPKG_STATUS.read_bytes()).hexdigest()
    except OSError:
        return "none"


def cache_key(source_key: str, epoch: int) -> str:
    """The key a cached layout of an image is valid for (see the module's docstring)."""
    return hashlib.sha256(f"{source_key}\nepoch {epoch}\nhost {host_packages()}\n"
                          .encode()).hexdigest()


@contextlib.contextmanager
def locked(cache: Path) -> Iterator[None]:
    """Hold the cache's lock (two `testbed up`s, or `images build` beside one)."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def lookup(cache: Path, tag: str, key: str) -> Path | None:
    """The cached layout of `tag` if it was built under `key`, else None."""
    entry = cache / tag
    try:
        return entry if (entry / KEY_FILE).read_text().strip() == key else None
    except (OSError, UnicodeDecodeError):
        return None


@contextlib.contextmanager
def new_entry(cache: Path, tag: str, key: str) -> Iterator[Path]:
    """A directory to write `tag`'s layout into; when the block ends without an error it
    replaces the cached entry (keyed `key`), else it is removed. Hold `locked` around it."""
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
    try:
        yield tmp
        (tmp / KEY_FILE).write_text(key + "\n")
        entry = cache / tag
        if entry.exists():
            shutil.rmtree(entry)
        os.rename(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
