"""Reading a user's .tgz without trusting it: bounded gunzip, then a strict walk of the tar's
512-byte headers. Pure.

Why not tarfile for reading: CPython's tarfile trusts header fields. A member whose size is
negative (base-256 encoded) sends its reader back to the same header forever, memory growing
(CVE-2025-8194; Debian's Python 3.11 still has it), and crafted pax headers make its header
regex backtrack (CVE-2024-6232). A bundle needs only a small part of tar (POSIX ustar and pax,
GNU long names; plain files and directories), which is read here with every field checked and
every step moving forward, so reading takes time and memory linear in the (bounded) input.
tarfile still writes bundles (netfate.bundle.build_bundle).

Refused, each with an InvalidInput naming the member or header offset: data that is not
gzip or expands past `max_expanded`; a header with a bad checksum, a number field that is not
octal or is negative, or a truncated member; links, devices, fifos, sparse files and any other
member type; absolute names, names with '..', empty or non-UTF-8 names, a name given twice;
more than `max_members` members or a member over `max_member_bytes`; a name no file system
holds (a component over 255 bytes, or over MAX_NAME_BYTES in all); a member under a file
member, or a file named like a directory other members are under ('a' and 'a/b'), which
no extraction can write.
"""

from __future__ import annotations

import unicodedata
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

from netfate.errors import InvalidInput

BLOCK = 512
MAX_PAX_BYTES = 8 * 1024  # a pax extended header's data; a real one is a few records
MAX_LONGNAME_BYTES = 4096
MAX_NAME_BYTES = 1024  # a member's normalised name; extraction adds its own directory
MAX_COMPONENT_BYTES = 255  # NAME_MAX of Linux file systems


@dataclass(frozen=True)
class Limits:
    max_compressed: int = 16 * 1024 * 1024  # bytes of .tgz
    max_expanded: int = 64 * 1024 * 1024  # bytes of tar once gunzipped
    max_members: int = 512
    max_member_bytes: int = 16 * 1024 * 1024


DEFAULT = Limits()


@dataclass(frozen=True)
class Member:
    """A file or directory of the archive. `name` is normalised (no './', no trailing '/');
    its data is tar[offset:offset + size]."""

    name: str
    kind: Literal["file", "dir"]
    size: int
    mode: int
    offset: int


# Input handed to zlib at a time: at the end of a member zlib copies what it was handed and
# did not use (`unused_data`), so handing it all of the rest made a file of many small members
# quadratic (16 MB of empty members: minutes; tester's probe of 2026-12-06).
FEED = 64 * 1024
MAX_GZIP_MEMBERS = 4096  # pigz/bgzip write a member per block; tar | gzip writes one


def gunzip(data: bytes, limits: Limits = DEFAULT) -> bytes:
    """The decompressed bytes of gzip `data` (concatenated gzip members too, at most
    MAX_GZIP_MEMBERS of them), refusing to produce more than limits.max_expanded bytes:
    memory stays bounded whatever the ratio, and time is linear in len(data) plus the output.
    InvalidInput if the data is over limits.max_compressed, not gzip, truncated, of too many
    members or expands too far."""
    if len(data) > limits.max_compressed:
        raise InvalidInput(f"archive is {len(data)} bytes; the limit is {limits.max_compressed}")
    out = bytearray()
    view = memoryview(data)
    pos, members = 0, 0
    while pos < len(data):
        if members and data[pos:pos + 2] != b"\x1f\x8b" \
                and data.count(0, pos) == len(data) - pos:
            break  # zero padding after the last member is allowed (looked at once)
        members += 1
        if members > MAX_GZIP_MEMBERS:
            raise InvalidInput(f"archive has more than {MAX_GZIP_MEMBERS} gzip members")
        d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            while not d.eof:
                if pos >= len(data):
                    raise InvalidInput("archive is not a complete .tgz (gzip stream "
                                       "truncated)")
                fed = view[pos:pos + FEED]
                pos += len(fed)
                chunk: bytes | memoryview = fed
                while chunk and not d.eof:
                    room = limits.max_expanded - len(out)
                    out += d.decompress(chunk, room + 1)
                    if len(out) > limits.max_expanded:
                        raise InvalidInput(f"archive expands to more than "
                                           f"{limits.max_expanded} bytes")
                    chunk = d.unconsumed_tail
                pos -= len(d.unused_data)  # the next member's start, handed in this feed
        except zlib.error as exc:
            raise InvalidInput(f"archive is not a readable .tgz (gzip): {exc}") from None
    return bytes(out)


def _number(field: bytes, what: str, at: int) -> int:
    """A tar number field: octal text (NUL or space terminated) or base-256 (first byte
    0x80). Negative values (first byte 0xff) and anything else are refused."""
    if field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    if field[:1] == b"\xff":
        raise InvalidInput(f"tar header at byte {at}: {what} is negative (base-256)")
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    if not all(0x30 <= c <= 0x37 for c in text):
        raise InvalidInput(f"tar header at byte {at}: {what} {text[:16]!r} is not octal")
    return int(text, 8)


def _checksum_ok(block: bytes, at: int) -> bool:
    stored = _number(block[148:156], "checksum", at)
    blank = block[:148] + b" " * 8 + block[156:]
    unsigned = sum(blank)
    signed = sum(b - 256 if b > 127 else b for b in blank)  # some old tars summed signed
    return stored in (unsigned, signed)


def _text(raw: bytes, what: str, at: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"tar header at byte {at}: {what} is not UTF-8") from None


def _pax_records(data: bytes, at: int) -> dict[str, str]:
    """POSIX pax records, each '<len> <keyword>=<value>\\n' with <len> counting the whole
    record; anything else is refused (tarfile would backtrack on it)."""
    out: dict[str, str] = {}
    pos = 0
    data = data.rstrip(b"\0")
    while pos < len(data):
        sp = data.find(b" ", pos, pos + 12)
        digits = data[pos:sp] if sp > pos else b""
        if not digits.isdigit():
            raise InvalidInput(f"pax header at byte {at}: malformed record length")
        end = pos + int(digits)
        record = data[sp + 1:end]
        if end > len(data) or end <= sp + 1 or not record.endswith(b"\n") or b"=" not in record:
            raise InvalidInput(f"pax header at byte {at}: malformed record")
        key, _, value = record[:-1].partition(b"=")
        out[_text(key, "pax keyword", at)] = _text(value, "pax value", at)
        pos = end
    return out


def _normalise(name: str, at: int) -> str:
    if not name or "\0" in name:
        raise InvalidInput(f"tar header at byte {at}: empty member name")
    p = PurePosixPath(name)
    if p.is_absolute():
        raise InvalidInput(f"bundle member {name!r} has an absolute path")
    if ".." in p.parts:
        raise InvalidInput(f"bundle member {name!r} contains '..'")
    if any(ord(c) < 0x20 or c == "\x7f" for c in name):
        raise InvalidInput(f"bundle member {name!r} has a control character in its name")
    if (odd := hidden_character(name)) is not None:
        raise InvalidInput(f"bundle member {name!r} has {odd} in its name")
    norm = "/".join(x for x in p.parts if x != ".")
    if len(norm.encode()) > MAX_NAME_BYTES:
        raise InvalidInput(f"bundle member {norm[:60]!r}...: name over {MAX_NAME_BYTES} bytes")
    if any(len(x.encode()) > MAX_COMPONENT_BYTES for x in p.parts):
        raise InvalidInput(f"bundle member {norm[:60]!r}...: a path component over "
                           f"{MAX_COMPONENT_BYTES} bytes")
    return norm


# Characters that make a name read as another, or hide part of it, in every listing:
# controls, format characters (bidi overrides such as U+202E, zero-width ones: CVE-2021-42574,
# "Trojan Source"), line and paragraph separators, surrogates, private-use and unassigned
# code points, and the Hangul fillers that render as nothing.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_FILLERS = frozenset({"\u115f", "\u1160", "\u3164", "\uffa0"})


def hidden_character(name: str) -> str | None:
    """The first character of `name` that hides or disguises it ("U+202E (Cf)"), or None.
    Names in bundles and image layers are held to it."""
    for c in name:
        cat = unicodedata.category(c)
        if cat in _HIDDEN_CATEGORIES or c in _FILLERS:
            return f"an invisible or disguising character U+{ord(c):04X} ({cat})"
    return None


def _check_tree(norm: str, kind: str, files: set[str], parents: set[str]) -> None:
    """Refuse what no extraction can write: `norm` under an earlier file member, or a file
    named like a directory earlier members are under. `files` and `parents` (every proper
    prefix of an earlier name) are updated."""
    parts = norm.split("/") if norm else []
    for i in range(1, len(parts)):
        prefix = "/".join(parts[:i])
        if prefix in files:
            raise InvalidInput(f"bundle member {norm!r} is under {prefix!r}, which is a file")
        parents.add(prefix)
    if kind == "file":
        if norm in parents:
            raise InvalidInput(f"bundle member {norm!r} is a file, but other members are "
                               "under it")
        files.add(norm)


_KINDS = {b"0": "file", b"\0": "file", b"7": "file", b"5": "dir"}
_REFUSED = {b"1": "a hard link", b"2": "a symbolic link", b"3": "a character device",
            b"4": "a block device", b"6": "a fifo", b"K": "a link (GNU long link name)",
            b"S": "a sparse file", b"V": "a volume label", b"M": "a multi-volume part"}


def read_tar(tar: bytes, limits: Limits = DEFAULT) -> list[Member]:
    """The members of an uncompressed tar, walking its headers strictly forward."""
    members: list[Member] = []
    seen: set[str] = set()
    files: set[str] = set()
    parents: set[str] = set()
    pax: dict[str, str] = {}
    longname: str | None = None
    pos = 0
    headers = 0
    while True:
        if pos + BLOCK > len(tar):
            if pos == len(tar) and not pax and longname is None:
                break  # no end-of-archive blocks: tolerated, as tar does
            raise InvalidInput(f"archive is truncated at byte {pos}")
        block = tar[pos:pos + BLOCK]
        if block == bytes(BLOCK):
            break  # end of archive
        headers += 1
        if headers > 3 * limits.max_members:
            raise InvalidInput(f"archive has more than {3 * limits.max_members} headers")
        if not _checksum_ok(block, pos):
            raise InvalidInput(f"tar header at byte {pos}: bad checksum (not a tar archive?)")
        size = _number(block[124:136], "size", pos)
        mode = _number(block[100:108], "mode", pos)
        kind = block[156:157]
        data_at = pos + BLOCK
        end = data_at + -(-size // BLOCK) * BLOCK
        if kind in (b"x", b"g", b"L"):
            cap = MAX_LONGNAME_BYTES if kind == b"L" else MAX_PAX_BYTES
            if size > cap:
                raise InvalidInput(f"tar header at byte {pos}: extended header over {cap} "
                                   "bytes")
            if data_at + size > len(tar):
                raise InvalidInput(f"archive is truncated at byte {pos}")
            data = tar[data_at:data_at + size]
            if kind == b"L":
                longname = _text(data.split(b"\0", 1)[0], "long name", pos)
            else:
                records = _pax_records(data, pos)
                if any(k.startswith("GNU.sparse") for k in records):
                    raise InvalidInput(f"tar header at byte {pos}: sparse files are refused")
                if kind == b"g":
                    if {"path", "size", "linkpath"} & set(records):
                        raise InvalidInput(f"pax global header at byte {pos} sets "
                                           "path, size or linkpath: refused")
                else:
                    pax.update(records)
            pos = end
            continue
        name = _member_name(block, pos, pax, longname)
        if kind in _REFUSED or kind not in _KINDS:
            what = _REFUSED.get(kind, f"of type {kind!r}")
            raise InvalidInput(f"bundle member {name!r} is {what}; only plain files and "
                               "directories are allowed")
        if "size" in pax:
            if not (pax["size"].isascii() and pax["size"].isdigit()):  # not "²"
                raise InvalidInput(f"bundle member {name!r}: pax size {pax['size'][:20]!r} "
                                   "is not a non-negative number")
            size = int(pax["size"])
            end = data_at + -(-size // BLOCK) * BLOCK
        if _KINDS[kind] == "dir" and size:
            raise InvalidInput(f"bundle member {name!r} is a directory with data")
        if size > limits.max_member_bytes:
            raise InvalidInput(f"bundle member {name!r} is {size} bytes; the limit is "
                               f"{limits.max_member_bytes}")
        if data_at + size > len(tar):
            raise InvalidInput(f"bundle member {name!r} is truncated")
        norm = _normalise(name, pos)
        if norm in seen:
            raise InvalidInput(f"bundle member {norm!r} appears twice")
        seen.add(norm)
        _check_tree(norm, _KINDS[kind], files, parents)
        members.append(Member(norm, "dir" if _KINDS[kind] == "dir" else "file", size,
                              mode & 0o7777, data_at))
        if len(members) > limits.max_members:
            raise InvalidInput(f"bundle has more than {limits.max_members} members")
        pax, longname = {}, None
        pos = end
    return members


def _member_name(block: bytes, at: int, pax: dict[str, str], longname: str | None) -> str:
    if "path" in pax:
        return pax["path"]
    if longname is not None:
        return longname
    name = _text(block[0:100].split(b"\0", 1)[0], "member name", at)
    if block[257:265] == b"ustar\x0000":
        prefix = _text(block[345:500].split(b"\0", 1)[0], "name prefix", at)
        if prefix:
            name = f"{prefix}/{name}"
    return name


def read_tgz(data: bytes, limits: Limits = DEFAULT) -> tuple[bytes, list[Member]]:
    """(the tar bytes, its members) of a .tgz; see the module's docstring for what is refused."""
    tar = gunzip(data, limits)
    return tar, read_tar(tar, limits)
