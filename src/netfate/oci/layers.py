"""Checking one OCI layer (a tar, usually gzipped) before it is unpacked. Pure.

A layer is unpacked onto a rootfs by umoci; a hostile layer must never write or point outside
it. Refused, with an InvalidInput naming the layer and the entry: an absolute name or one with
'..'; a symlink whose target is absolute or climbs out of the rootfs from where it sits; a
hard link to anything but an earlier entry of the same layer, or to a directory; an entry
written through a symlink of the same layer; character or block devices,
fifos, sparse files; a whiteout (``.wh.<name>``, OCI image spec "Whiteouts") whose target is
empty, '.' or '..'; more entries or bytes than the limits. The tar headers are walked with
netfate.archive's strict reader helpers (every field checked, every step forward), so time
and memory stay linear in the bounded input.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import PurePosixPath

from netfate import archive
from netfate.archive import BLOCK, MAX_LONGNAME_BYTES, MAX_PAX_BYTES
from netfate.errors import InvalidInput

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"

# tar type flags (POSIX ustar)
_FILE = (b"0", b"\0", b"7")
_HARDLINK, _SYMLINK, _DIR = b"1", b"2", b"5"
_REFUSED = {b"3": "a character device", b"4": "a block device", b"6": "a fifo",
            b"S": "a sparse file", b"V": "a volume label", b"M": "a multi-volume part"}


@dataclass(frozen=True)
class LayerLimits:
    max_entries: int = 20_000
    max_expanded: int = 512 * 1024 * 1024  # bytes of tar, once gunzipped


MAX_LINK_DEPTH = 32  # directories above a symlink (a real image's are a few)


class _Links:
    """The layer's symlinks as a trie of path components, so whether an entry's path goes
    through one costs one dict step per component (never a slice per prefix)."""

    def __init__(self) -> None:
        self.child: dict[tuple[int, str], int] = {}
        self.link: set[int] = set()

    def _node(self, name: str, make: bool) -> int | None:
        cur = 0
        for part in name.split("/"):
            nxt = self.child.get((cur, part))
            if nxt is None:
                if not make:
                    return None
                nxt = self.child[(cur, part)] = len(self.child) + 1
            cur = nxt
        return cur

    def add(self, name: str) -> None:
        node = self._node(name, True)
        assert node is not None
        self.link.add(node)

    def discard(self, name: str) -> None:
        if self.link:
            node = self._node(name, False)
            if node is not None:
                self.link.discard(node)

    def through(self, name: str) -> str | None:
        """The symlink among `name`'s parent directories, if any."""
        if not self.link:
            return None
        parts = name.split("/")
        cur = 0
        for i, part in enumerate(parts[:-1]):
            nxt = self.child.get((cur, part))
            if nxt is None:
                return None
            if nxt in self.link:
                return "/".join(parts[:i + 1])
            cur = nxt
        return None


@dataclass(frozen=True)
class LayerSummary:
    entries: int
    expanded_bytes: int  # the tar's size: what unpacking it writes, at most


def _norm(name: str, layer: str, what: str = "entry") -> str:
    if not name or "\0" in name:
        raise InvalidInput(f"layer {layer}: an {what} has an empty name")
    p = PurePosixPath(name)
    if p.is_absolute():
        raise InvalidInput(f"layer {layer}: {what} {name!r} has an absolute path")
    if ".." in p.parts:
        raise InvalidInput(f"layer {layer}: {what} {name!r} contains '..'")
    if (odd := archive.hidden_character(name)) is not None:  # newlines, bidi overrides...
        raise InvalidInput(f"layer {layer}: {what} {name[:80]!r} has {odd} in its name")
    return "/".join(x for x in p.parts if x != ".")


def _check_symlink(name: str, target: str, layer: str) -> None:
    """A symlink's target must stay inside the rootfs, resolved from the link's directory
    (umoci resolves safely too; refusing makes the image's meaning plain)."""
    if not target or target.startswith("/"):
        raise InvalidInput(f"layer {layer}: symlink {name!r} -> {target!r} is absolute; only "
                           "relative links inside the image are allowed")
    depth = len(PurePosixPath(name).parts) - 1  # directories above the link
    for part in PurePosixPath(target).parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            raise InvalidInput(f"layer {layer}: symlink {name!r} -> {target!r} escapes the "
                               "rootfs")


def _check_whiteout(name: str, layer: str) -> None:
    base = posixpath.basename(name)
    if base.startswith(WHITEOUT) and base != OPAQUE:
        target = base[len(WHITEOUT):]
        if target in ("", ".", "..") or "/" in target:
            raise InvalidInput(f"layer {layer}: whiteout {name!r} reaches outside its "
                               "directory")


def check_layer(tar: bytes, layer: str, limits: LayerLimits | None = None) -> LayerSummary:
    """Walk an uncompressed layer tar and refuse it if any entry could reach outside the
    rootfs (see the module docstring). `layer` names it in errors (its digest)."""
    limits = limits or LayerLimits()
    if len(tar) > limits.max_expanded:
        raise InvalidInput(f"layer {layer} expands to {len(tar)} bytes; the limit is "
                           f"{limits.max_expanded}")
    seen: set[str] = set()
    links = _Links()
    dirs: set[str] = set()
    pax: dict[str, str] = {}
    longname: str | None = None
    longlink: str | None = None
    pos = headers = entries = 0
    while True:
        if pos + BLOCK > len(tar):
            if pos == len(tar) and not pax and longname is None:
                break
            raise InvalidInput(f"layer {layer} is truncated at byte {pos}")
        block = tar[pos:pos + BLOCK]
        if block == bytes(BLOCK):
            break
        headers += 1
        if headers > 3 * limits.max_entries:
            raise InvalidInput(f"layer {layer} has more than {3 * limits.max_entries} headers")
        if not archive._checksum_ok(block, pos):
            raise InvalidInput(f"layer {layer}: tar header at byte {pos}: bad checksum")
        size = archive._number(block[124:136], "size", pos)
        kind = block[156:157]
        data_at = pos + BLOCK
        end = data_at + -(-size // BLOCK) * BLOCK
        if kind in (b"x", b"g", b"L", b"K"):
            cap = MAX_PAX_BYTES if kind in (b"x", b"g") else MAX_LONGNAME_BYTES
            if size > cap or data_at + size > len(tar):
                raise InvalidInput(f"layer {layer}: extended header at byte {pos} is too "
                                   "long or truncated")
            data = tar[data_at:data_at + size]
            if kind == b"L":
                longname = archive._text(data.split(b"\0", 1)[0], "long name", pos)
            elif kind == b"K":
                longlink = archive._text(data.split(b"\0", 1)[0], "long link", pos)
            else:
                records = archive._pax_records(data, pos)
                if any(k.startswith("GNU.sparse") for k in records):
                    raise InvalidInput(f"layer {layer}: sparse files are refused")
                if kind == b"g":
                    if {"path", "size", "linkpath"} & set(records):
                        raise InvalidInput(f"layer {layer}: a pax global header sets path, "
                                           "size or linkpath")
                else:
                    pax.update(records)
            pos = end
            continue
        raw_name = archive._member_name(block, pos, pax, longname)
        name = _norm(raw_name, layer)
        if kind in _REFUSED or kind not in (*_FILE, _HARDLINK, _SYMLINK, _DIR):
            what = _REFUSED.get(kind, f"of type {kind!r}")
            raise InvalidInput(f"layer {layer}: entry {raw_name!r} is {what}; refused")
        if "size" in pax:
            if not (pax["size"].isascii() and pax["size"].isdigit()):  # not "²"
                raise InvalidInput(f"layer {layer}: entry {raw_name!r} has a bad pax size")
            size = int(pax["size"])
            end = data_at + -(-size // BLOCK) * BLOCK
        if data_at + size > len(tar):
            raise InvalidInput(f"layer {layer}: entry {raw_name!r} is truncated")
        link = pax.get("linkpath") or longlink or archive._text(
            block[157:257].split(b"\0", 1)[0], "link name", pos)
        through = links.through(name)
        if through is not None:  # a/b -> .. then a/b/c -> ..: lexically fine, yet outside
            raise InvalidInput(f"layer {layer}: entry {raw_name!r} is written through the "
                               f"symlink {through!r} of the same layer")
        if kind == _SYMLINK:
            _check_symlink(name, link, layer)
        elif kind == _HARDLINK:
            target = _norm(link, layer, "hard link target")
            if target not in seen:
                raise InvalidInput(f"layer {layer}: hard link {raw_name!r} -> {link!r} points "
                                   "outside the layer (not an earlier entry of it)")
            if target in dirs:  # link(2) refuses a directory: umoci would fail to unpack
                raise InvalidInput(f"layer {layer}: hard link {raw_name!r} -> {link!r} points "
                                   "at a directory")
        _check_whiteout(name, layer)
        seen.add(name)
        if kind == _SYMLINK:
            if name.count("/") >= MAX_LINK_DEPTH:
                raise InvalidInput(f"layer {layer}: symlink {raw_name!r} is more than "
                                   f"{MAX_LINK_DEPTH} directories deep")
            links.add(name)
        else:
            links.discard(name)
        (dirs.add if kind == _DIR else dirs.discard)(name)
        entries += 1
        if entries > limits.max_entries:
            raise InvalidInput(f"layer {layer} has more than {limits.max_entries} entries")
        pax, longname, longlink = {}, None, None
        pos = end
    return LayerSummary(entries, len(tar))
