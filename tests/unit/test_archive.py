"""Reading a user's .tgz (netfate.archive, issue #16 input 1 and its kind): malformed headers,
unsafe members and oversized content are refused quickly; real tars read as tarfile reads them."""

from __future__ import annotations

import gzip
import io
import random
import tarfile
import time
import zlib
from pathlib import Path

import pytest
import yaml

from netfate import archive
from netfate.bundle import BundleStore, inspect_bundle
from netfate.errors import InvalidInput
from tests.unit.hostile_docs import (
    DESC,
    NEGATIVE_512,
    bundle,
    header,
    negative_size_tgz,
    octal,
    pad,
    pax_member,
    tgz,
    within,
)

END = bytes(1024)


def test_issue_negative_member_size_is_refused_at_once(tmp_path: Path) -> None:
    """The 104-byte .tgz of the issue: CPython's tarfile spins on it; here it is refused."""
    data = negative_size_tgz()
    assert len(data) == 104
    for fn in (inspect_bundle, BundleStore(tmp_path).add):
        with pytest.raises(InvalidInput, match="size is negative"):
            within(10, fn, data)
    assert list(tmp_path.iterdir()) == []


def _refused(tar: bytes, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        within(10, archive.read_tgz, gzip.compress(tar))


@pytest.mark.parametrize(("tar", "words"), [
    # number fields: negative (base-256), not octal; in a pax record, negative or not a number
    (header(b"a", NEGATIVE_512) + END, "size is negative"),
    (header(b"a", b"-0000001000\0") + END, "not octal"),
    (header(b"a", b"12345678901\0") + END, "not octal"),
    (pax_member({"size": "-512"}) + header(b"a", octal(0)) + END, "pax size"),
    (pax_member({"size": "1e9"}) + header(b"a", octal(0)) + END, "pax size"),
    # broken headers and truncation
    (header(b"a", octal(0), checksum=False) + END, "checksum"),
    (header(b"a", octal(4096)) + pad(b"x"), "truncated"),
    (header(b"a", octal(0))[:300], "truncated"),
    (header(b"././@PaxHeader", octal(20), b"x") + pad(b"99999 path=x\n") + END, "malformed"),
    (header(b"././@PaxHeader", octal(9000), b"x") + bytes(9216) + END, "extended header"),
    (pax_member({"path": "a"}, b"g") + header(b"b", octal(0)) + END, "global header"),
    (pax_member({"GNU.sparse.size": "1"}) + header(b"a", octal(0)) + END, "sparse"),
    # what a bundle may not hold
    (header(b"/etc/passwd", octal(0)) + END, "absolute"),
    (header(b"../x", octal(0)) + END, r"'\.\.'"),
    (header(b"x", octal(0), prefix=b"..") + END, r"'\.\.'"),
    (pax_member({"path": "a/../../x"}) + header(b"a", octal(0)) + END, r"'\.\.'"),
    (header(b"a\nb", octal(0)) + END, "control character"),
    (header("fw\u202egpj.sh".encode(), octal(0)) + END, r"U\+202E \(Cf\)"),
    (header("a\u200bb".encode(), octal(0)) + END, r"U\+200B"),
    (header("a\u2028b".encode(), octal(0)) + END, r"U\+2028 \(Zl\)"),
    (header("c\u3164d".encode(), octal(0)) + END, r"U\+3164"),
    (header("a\u0085b".encode(), octal(0)) + END, r"U\+0085 \(Cc\)"),
    (header(b"\xff", octal(0)) + END, "UTF-8"),
    (header(b"a", octal(0)) + header(b"./a", octal(0)) + END, "twice"),
    (header(b"l", octal(0), b"2") + END, "symbolic link"),
    (header(b"l", octal(0), b"1") + END, "hard link"),
    (header(b"d", octal(0), b"3") + END, "character device"),
    (header(b"d", octal(0), b"4") + END, "block device"),
    (header(b"f", octal(0), b"6") + END, "fifo"),
    (header(b"s", octal(0), b"S") + END, "sparse"),
    (header(b"z", octal(0), b"Z") + END, "type"),
    (header(b"d", octal(512), b"5") + bytes(512) + END, "directory with data"),
])
def test_malformed_or_unsafe_tars_are_refused(tar: bytes, words: str) -> None:
    _refused(tar, words)


def test_member_count_and_sizes_are_bounded() -> None:
    small = archive.Limits(max_members=3, max_member_bytes=100, max_expanded=64 * 1024)
    many = b"".join(header(b"f%d" % i, octal(0)) for i in range(4)) + END
    with pytest.raises(InvalidInput, match="more than 3 members"):
        archive.read_tgz(gzip.compress(many), small)
    big = header(b"f", octal(101)) + pad(b"x" * 101) + END
    with pytest.raises(InvalidInput, match="101 bytes; the limit is 100"):
        archive.read_tgz(gzip.compress(big), small)
    # A gzip bomb: 1 MiB of zeros from 1 KiB: gunzip stops at the limit, never holding more.
    bomb = gzip.compress(bytes(1024 * 1024))
    with pytest.raises(InvalidInput, match="expands to more than 65536"):
        archive.read_tgz(bomb, small)
    with pytest.raises(InvalidInput, match="archive is 17"):
        archive.read_tgz(b"x" * 17, archive.Limits(max_compressed=16))
    with pytest.raises(InvalidInput, match="headers"):  # metadata headers count too
        archive.read_tgz(gzip.compress(pax_member({"comment": "x"}) * 10 + END), small)


@pytest.mark.parametrize(("data", "words"), [
    (b"not a tarball", "tgz"),
    (gzip.compress(header(b"a", octal(0)) + END)[:-12], "truncated"),
    (zlib.compress(b"x"), "tgz"),
])
def test_not_gzip(data: bytes, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        archive.read_tgz(data)


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_real_tars_read_as_tarfile_reads_them(fmt: int) -> None:
    """Long names (ustar prefix, GNU 'L', pax path), non-ASCII names, directories, a pax
    global header (git archive writes one): the same members and bytes as tarfile gives."""
    files = {"descriptor.yaml": b"name: x\n", "scripts/start": b"#!/bin/sh\n",
             "files/" + "d" * 90 + "/" + "n" * 60: b"long", "files/caf\u00e9": b"\xe9"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        if fmt == tarfile.PAX_FORMAT:
            tar.pax_headers = {"comment": "0123abcd"}
        d = tarfile.TarInfo("files")
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    raw, members = archive.read_tgz(gzip.compress(buf.getvalue()))
    got = {m.name: raw[m.offset:m.offset + m.size] for m in members if m.kind == "file"}
    assert got == files
    assert [m.name for m in members if m.kind == "dir"] == ["files"]
    assert all(m.mode == 0o755 for m in members if m.kind == "file")


def test_bundle_store_extracts_what_was_inspected(tmp_path: Path) -> None:
    b = BundleStore(tmp_path).add(bundle(DESC))
    assert (b.root / "scripts" / "start").read_bytes() == b"#!/bin/sh\n"
    assert (b.root / "scripts" / "start").stat().st_mode & 0o111
    assert b.descriptor.name == "probe"


_STD = [("descriptor.yaml", yaml.safe_dump(DESC).encode()), ("scripts/start", b"#!/bin/sh\n"),
        ("scripts/stop", b"#!/bin/sh\n")]


@pytest.mark.parametrize(("extra", "words"), [
    ([("a", b"x"), ("a/b", b"y")], "under 'a', which is a file"),
    ([("a/b", b"y"), ("a", b"x")], "other members are under it"),
    ([("descriptor.yaml/x", b"y")], "which is a file"),
    ([("x" * 256, b"y")], "component over 255 bytes"),
    ([("/".join(["d" * 200] * 6), b"y")], "over 1024 bytes"),
])
def test_members_no_extraction_can_write_are_refused(tmp_path: Path, extra: list[tuple[str, bytes]],
                                                     words: str) -> None:
    """Inspection (the API's upload) used to accept these, and the node's extraction then
    failed with a raw OSError (File exists, Is a directory, File name too long)."""
    data = tgz([*_STD, *extra])
    with pytest.raises(InvalidInput, match=words):
        inspect_bundle(data)
    with pytest.raises(InvalidInput, match=words):
        BundleStore(tmp_path).add(data)
    assert list(tmp_path.iterdir()) == []


def test_a_directory_member_then_files_under_it_is_fine(tmp_path: Path) -> None:
    tar = b"".join(header(n.encode(), octal(len(d)), k) + pad(d) for n, d, k in [
        *((n, d, b"0") for n, d in _STD), ("extra/", b"", b"5"), ("extra/a", b"x", b"0"),
        ("extra/b/c", b"z", b"0"), ("extra/b", b"", b"5")]) + END
    b = BundleStore(tmp_path).add(gzip.compress(tar))
    assert (b.root / "extra" / "a").read_bytes() == b"x"


def test_many_gzip_members_take_linear_time() -> None:
    """16 MB of empty gzip members (the allowed upload) held a reader for minutes: each
    member recopied the rest of the input (tester's probe of 2026-12-06). Now they are
    refused past the member cap at once."""

    one = gzip.compress(b"")
    data = one * (archive.DEFAULT.max_compressed // len(one))
    t0 = time.perf_counter()
    with pytest.raises(InvalidInput, match="gzip members"):
        archive.gunzip(data)
    assert time.perf_counter() - t0 < 2.0


def test_gzip_members_across_feeds_read_as_gzip_reads_them() -> None:
    """Members of sizes around the feed size (a member's end in the middle of a feed), and
    as many as the cap allows, read back exactly."""

    rng = random.Random(7)
    parts = [rng.randbytes(rng.choice([0, 1, 100, archive.FEED - 3, archive.FEED + 5,
                                       3 * archive.FEED])) for _ in range(60)]
    data = b"".join(gzip.compress(p, compresslevel=0) for p in parts) + b"\0" * 700
    assert archive.gunzip(data) == b"".join(parts)
    many = gzip.compress(b"a") * archive.MAX_GZIP_MEMBERS
    assert archive.gunzip(many) == b"a" * archive.MAX_GZIP_MEMBERS
    with pytest.raises(InvalidInput, match="gzip members"):
        archive.gunzip(many + gzip.compress(b"a"))
    with pytest.raises(InvalidInput, match="truncated"):
        archive.gunzip(data[:len(gzip.compress(parts[0], compresslevel=0)) + 30])
