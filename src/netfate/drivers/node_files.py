"""Node files: files on the node that an NF's config names by absolute path under its
descriptor's `node-files` keys (the VPN's IKE key file, `psk_file`: the secret stays out of
the config). A native NF's scripts read them where they are; a confined flavour is given
them at the same path: the container bound read-only (netfate.drivers.container_spec), the VM
a copy, mode 0400, written through its guest agent (netfate.drivers.vm_guest).

Both confined flavours take them only under /run or /tmp (ROOTS): the container's own tmpfs
mounts (a bind there makes its mount point in no shared image), and in a VM nothing of the
guest's own (its tools, /init, the NF's bundle under /nf) can be overwritten by one.

Whoever configures an NF names the file, so every flavour takes only the files in the NF
owner's own directory, `<run dir>/node-files/<owner>/` (`check_owned`): the node's
operator puts them there. Otherwise a user could have their NF read another tenant's key,
or any file of the node's (a confused deputy: the NF's scripts run as root), and learn
from its errors whether a file exists and what shape it has (found by a hostile probe,
2026-12-03).

    node_files.paths(bundle, config)   # ["/run/netfate/node-files/client1/psk"]: the container's
    node_files.read(bundle, config)    # {path: bytes}, each at most MAX_BYTES: the VM's
"""

from __future__ import annotations

import os
import stat
from pathlib import PurePosixPath
from typing import Any

from netfate import paths as run_paths
from netfate.bundle import Bundle
from netfate.errors import InvalidInput

ROOTS = ("run", "tmp")
# Bytes per node file copied into a VM: a key file is one line, a certificate chain a few
# KiB; the copy travels base64 through the guest agent and lives in the guest's RAM.
MAX_BYTES = 64 << 10


def owner_dir(owner: str) -> PurePosixPath:
    """The directory of `owner`'s node files: `<run dir>/node-files/<owner>`."""
    return PurePosixPath(run_paths.run_dir()) / "node-files" / owner


def check_owned(keys: tuple[str, ...], owner: str, config: dict[str, Any]) -> None:
    """InvalidInput unless each node file the config names under `keys` (a descriptor's
    `node-files`) is a normalised absolute path inside `owner_dir(owner)`, and, where it
    exists (on the node), does not lead out of it by a symbolic link. The orchestrator
    checks the path; the node checks both, before any flavour acts, and that an existing
    one is a regular file."""
    base = owner_dir(owner)
    for key in keys:
        v = config.get(key)
        if v is None:
            continue
        p = PurePosixPath(v) if isinstance(v, str) and "\x00" not in v else None
        if p is None or str(p) != v or ".." in p.parts or base not in p.parents:
            raise InvalidInput(
                f"config {key}: {str(v)[:200]!r}: an NF of {owner} may name only files in "
                f"{base}/ (its owner's node files, put there by the node's operator)")
        if not os.path.lexists(v):
            continue  # the operator may put it there later; the NF says so if not
        if not PurePosixPath(os.path.realpath(v)).is_relative_to(os.path.realpath(base)):
            raise InvalidInput(f"config {key}: {v} leads out of {base}/ (a symbolic link)")
        # A FIFO would hold the NF's scripts (and the node's agent) until they time out.
        if not stat.S_ISREG(os.stat(v).st_mode):
            raise InvalidInput(f"config {key}: {v} is not a regular file")


def _named(bundle: Bundle, config: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, path) for each `node-files` key the config sets. InvalidInput for a value that is
    not an absolute path string."""
    out = []
    for key in bundle.descriptor.node_files:
        v = config.get(key)
        if v is None:
            continue
        if not isinstance(v, str) or not v.startswith("/"):
            raise InvalidInput(f"config {key}: must be an absolute path of a file on the node")
        out.append((key, v))
    return out


def paths(bundle: Bundle, config: dict[str, Any]) -> list[str]:
    """The node files the NF's config names (the keys it leaves unset name none).
    InvalidInput for a value that is not a path string, or a file that is missing."""
    out = []
    for key, path in _named(bundle, config):
        if not os.path.isfile(path):
            raise InvalidInput(f"config {key}: {path} is not a file on the node")
        out.append(path)
    return out


def read(bundle: Bundle, config: dict[str, Any], limit: int = MAX_BYTES) -> dict[str, bytes]:
    """Path -> contents of the node files the NF's config names, for a copy at the same path
    in the NF's VM. InvalidInput, before anything is copied, for a path outside /run or /tmp
    (or with ".."), a file that is missing or not a regular file, or one over `limit` bytes."""
    out: dict[str, bytes] = {}
    for key, path in _named(bundle, config):
        parts = PurePosixPath(path).parts
        if ".." in parts or len(parts) < 3 or parts[1] not in ROOTS:
            raise InvalidInput(f"config {key}: {path[:200]!r}: a node file is given to a VM or "
                               f"a container only under {' or '.join('/' + r for r in ROOTS)}")
        try:  # O_NONBLOCK: a FIFO put there must not hang the driver
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError as exc:
            raise InvalidInput(f"config {key}: {path} is not a file on the node "
                               f"({exc.strerror})") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise InvalidInput(f"config {key}: {path} is not a regular file on the node")
            data = _read_at_most(fd, limit + 1) if st.st_size <= limit else b""
        finally:
            os.close(fd)
        if st.st_size > limit or len(data) > limit:  # (it may grow while read)
            raise InvalidInput(f"config {key}: {path} is {max(st.st_size, len(data))} bytes; "
                               f"a node file copied into a VM is at most {limit} bytes")
        out[path] = data
    return out


def _read_at_most(fd: int, n: int) -> bytes:
    """Up to `n` bytes from `fd`, until its end."""
    out = b""
    while len(out) < n:
        chunk = os.read(fd, n - len(out))
        if not chunk:
            break
        out += chunk
    return out
