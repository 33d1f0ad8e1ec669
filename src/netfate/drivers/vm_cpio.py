"""A reproducible writer of the cpio "newc" format (the Linux initramfs format:
Documentation/driver-api/early-userspace/buffer-format.rst): every entry owned by root,
mtime 0 (unless given), inode numbers by order of writing: the same entries give the same
bytes."""

from __future__ import annotations

from typing import BinaryIO

_S_IFDIR = 0o040000
_S_IFREG = 0o100000
_S_IFLNK = 0o120000


class CpioWriter:
    """Append entries to ``out``; call `trailer` last. Paths are relative ("bin/sh")."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.ino = 0
        self.pos = 0

    def _entry(self, name: str, mode: int, data: bytes, nlink: int = 1, mtime: int = 0) -> None:
        self.ino += 1
        raw = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, nlink, mtime, len(data), 0, 0, 0, 0, len(raw), 0)
        hdr = b"070701" + b"".join(f"{v:08x}".encode() for v in fields)
        self._write(hdr + raw)
        self._pad()
        self._write(data)
        self._pad()

    def _write(self, b: bytes) -> None:
        self.out.write(b)
        self.pos += len(b)

    def _pad(self) -> None:
        self._write(b"\0" * (-self.pos % 4))

    def directory(self, name: str, mode: int = 0o755) -> None:
        self._entry(name, _S_IFDIR | mode, b"", nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o644, mtime: int = 0) -> None:
        """``mtime``: kept where it matters (Python's .pyc files name their source's)."""
        self._entry(name, _S_IFREG | mode, data, mtime=mtime)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, _S_IFLNK | 0o777, target.encode())

    def trailer(self) -> None:
        self._entry("TRAILER!!!", 0, b"")
        self._write(b"\0" * (-self.pos % 512))
