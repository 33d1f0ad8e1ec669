"""Files the driver reads from (or writes to) a directory an NF can write: its instance
directory's run/ (script output, export-state's document, the container's log).

The NF can replace any name there, between the driver's writing and its reading, by a
symlink (to /etc/shadow, or a host directory), a hard link, a FIFO (a read that blocks
forever) or a huge file. So every access goes through directory descriptors opened from the
trusted base without following a link at any step (O_NOFOLLOW, openat), and a file is read
only if it is a regular file with one link, bounded in size. CWE-59, CWE-61.

    data = read(nf_dir, "run/.start.out", limit=MAX_OUTPUT)   # None if it is not there
    fd = create(nf_dir, "run/.start.out")                     # for a child's stdout
    unlink(nf_dir, "run/.start.out")
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

MAX_OUTPUT = 1 << 20   # a lifecycle script's stdout (bytes): a few lines in practice
MAX_STDERR = 64 << 10  # what is kept of its stderr (the tail)
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeFile(OSError):
    """The name is not a regular file of its own (a link, a FIFO, a directory...)."""


def _split(rel: str) -> tuple[list[str], str]:
    parts = rel.split("/")
    if not parts or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{rel!r}: a relative path of plain names")
    return parts[:-1], parts[-1]


@contextlib.contextmanager
def _parent(base: Path, rel: str) -> Iterator[tuple[int, str]]:
    """(a descriptor of rel's directory, rel's last name), no link followed on the way."""
    dirs, name = _split(rel)
    fd = os.open(base, _DIR)
    try:
        for d in dirs:
            nxt = os.open(d, _DIR, dir_fd=fd)
            os.close(fd)
            fd = nxt
        yield fd, name
    finally:
        os.close(fd)


def read(base: Path, rel: str, *, limit: int, tail: bool = False) -> bytes | None:
    """The bytes of ``base/rel``; None if it (or a directory on its way) does not exist.
    ``limit``: at most this many bytes; beyond it UnsafeFile, or with ``tail`` its last
    ``limit`` bytes. UnsafeFile if any step is a symlink or the file is not a regular file
    with a single link (never opened then, or opened without blocking)."""
    try:
        with _parent(base, rel) as (dfd, name):
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         dir_fd=dfd)
    except FileNotFoundError:
        return None
    except OSError as exc:  # ELOOP (a link), ENOTDIR (a link or file in a directory's place)
        raise UnsafeFile(f"{rel}: not a file of the NF's own ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise UnsafeFile(f"{rel}: not a regular file with one link")
        if st.st_size > limit:
            if not tail:
                raise UnsafeFile(f"{rel}: over {limit} bytes")
            fh.seek(st.st_size - limit)
        data = fh.read(limit + 1)
    if len(data) > limit:  # it grew while read
        if not tail:
            raise UnsafeFile(f"{rel}: over {limit} bytes")
        data = data[-limit:]
    return data


def create(base: Path, rel: str) -> int:
    """A new, empty file ``base/rel`` open for writing (mode 0600): whatever had the name is
    removed first, and the file is made with O_EXCL, so no link is written through. The
    caller closes the descriptor. UnsafeFile if the name is taken again in between (the NF
    racing the driver) or by something unlink cannot remove (a non-empty directory)."""
    with _parent(base, rel) as (dfd, name):
        unlink_at(dfd, name)
        try:
            return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                           | os.O_CLOEXEC, 0o600, dir_fd=dfd)
        except FileExistsError:
            raise UnsafeFile(f"{rel}: the name is taken by something that is not ours to "
                             "replace") from None


def append(base: Path, rel: str) -> int:
    """``base/rel`` open for appending, made (0600) if missing; UnsafeFile if it is a link
    (symbolic or hard: more than one link) or not a regular file. The caller closes the
    descriptor."""
    try:
        with _parent(base, rel) as (dfd, name):
            fd = os.open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                         | os.O_NONBLOCK | os.O_CLOEXEC, 0o600, dir_fd=dfd)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise UnsafeFile(f"{rel}: not a file of the NF's own ({exc.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        # a hard link would have the driver append to the file it shares (a host file)
        os.close(fd)
        raise UnsafeFile(f"{rel}: not a regular file with one link")
    return fd


def unlink(base: Path, rel: str) -> None:
    """Remove ``base/rel`` if there (a link itself, never what it points to)."""
    with contextlib.suppress(OSError), _parent(base, rel) as (dfd, name):
        unlink_at(dfd, name)


def unlink_at(dfd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dfd)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        with contextlib.suppress(OSError):
            os.rmdir(name, dir_fd=dfd)
