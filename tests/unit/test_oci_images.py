"""OCI images for the container flavour: verification refuses each kind of bad image before
anything is unpacked or stored, and the catalogue's image build is reproducible."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from netfate.errors import DriverError, InvalidInput, NotFound
from netfate.oci import build
from netfate.oci.layout import DirSource, verify
from netfate.oci.store import ImageStore


def layer(entries: list[tuple[str, bytes, str]]) -> bytes:
    """An uncompressed tar whose entries are (name, tarfile type, data or link target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, extra in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = extra
                tar.addfile(info)
            elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                info.devmajor, info.devminor = 1, 3
                tar.addfile(info)
            elif kind == tarfile.REGTYPE:
                info.size = len(extra.encode())
                tar.addfile(info, io.BytesIO(extra.encode()))
            else:
                tar.addfile(info)
    return buf.getvalue()


GOOD = [("bin", tarfile.DIRTYPE, ""), ("bin/tool", tarfile.REGTYPE, "#!/bin/sh\n"),
        ("bin/sh", tarfile.SYMTYPE, "tool"), ("lib", tarfile.SYMTYPE, "bin"),
        ("bin/hard", tarfile.LNKTYPE, "bin/tool"), ("etc/.wh..wh..opq", tarfile.REGTYPE, ""),
        ("etc/.wh.old", tarfile.REGTYPE, "")]


def make_layout(root: Path, tar: bytes, *, tag: str = "t", diff: bytes | None = None) -> Path:
    return_digest = build.write_layout(root, tar, tag, 0, ["/bin/tool"])
    assert return_digest.startswith("sha256:")
    if diff is not None:  # the config claims another uncompressed layer
        idx = json.loads((root / "index.json").read_text())
        mhex = idx["manifests"][0]["digest"].split(":")[1]
        manifest = json.loads((root / "blobs/sha256" / mhex).read_bytes())
        chex = manifest["config"]["digest"].split(":")[1]
        cfg = json.loads((root / "blobs/sha256" / chex).read_bytes())
        cfg["rootfs"]["diff_ids"] = [f"sha256:{hashlib.sha256(diff).hexdigest()}"]
        _rewrite(root, manifest, "config", json.dumps(cfg).encode())
    return root


def _rewrite(root: Path, manifest: dict[str, object], key: str, data: bytes) -> None:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (root / "blobs/sha256" / digest.split(":")[1]).write_bytes(data)
    manifest[key] = {**manifest[key], "digest": digest, "size": len(data)}  # type: ignore[dict-item]
    mdata = json.dumps(manifest).encode()
    mdigest = "sha256:" + hashlib.sha256(mdata).hexdigest()
    (root / "blobs/sha256" / mdigest.split(":")[1]).write_bytes(mdata)
    idx = json.loads((root / "index.json").read_text())
    idx["manifests"][0].update(digest=mdigest, size=len(mdata))
    (root / "index.json").write_text(json.dumps(idx))


def refused(tmp_path: Path, entries: list[tuple[str, bytes, str]], match: str) -> None:
    src = make_layout(tmp_path / "img", layer(entries))
    store = ImageStore(tmp_path / "store")
    with pytest.raises(InvalidInput, match=match):
        store.import_image(src, "bad")
    assert store.list() == []
    assert not (tmp_path / "store" / "layout" / "blobs").exists(), "nothing may be left"


def test_a_good_image_verifies_stores_and_imports_from_an_oci_archive(tmp_path: Path) -> None:
    src = make_layout(tmp_path / "img", layer(GOOD))
    store = ImageStore(tmp_path / "store")
    info = store.import_image(src, "good")
    assert store.resolve("good").digest == info.digest
    assert store.resolve("good").size == info.size > 0
    assert store.import_image(src, "good") == info  # idempotent
    archive = tmp_path / "img.tar"  # what `podman save --format oci-archive` writes
    with tarfile.open(archive, "w") as tar:
        for p in sorted(src.rglob("*")):
            tar.add(p, arcname=p.relative_to(src).as_posix(), recursive=False)
    assert store.import_image(archive, "again", "t").digest == info.digest
    assert [i.tag for i in store.list()] == ["again", "good"]
    with pytest.raises(NotFound, match="no image"):
        store.resolve("nope")


@pytest.mark.parametrize(("entries", "match"), [
    ([("../escape", tarfile.REGTYPE, "x")], "contains '..'"),
    ([("a/../../escape", tarfile.REGTYPE, "x")], "contains '..'"),
    ([("/etc/passwd", tarfile.REGTYPE, "x")], "absolute path"),
    ([("bin/sh", tarfile.SYMTYPE, "/bin/busybox")], "absolute"),
    ([("bin/up", tarfile.SYMTYPE, "../../etc/shadow")], "escapes the rootfs"),
    ([("x", tarfile.SYMTYPE, "a/../../..")], "escapes the rootfs"),
    ([("hard", tarfile.LNKTYPE, "etc/shadow")], "outside the layer"),
    ([("hard", tarfile.LNKTYPE, "../../etc/shadow")], "contains '..'"),
    ([("hard", tarfile.LNKTYPE, "later"), ("later", tarfile.REGTYPE, "x")], "outside the layer"),
    ([("dev/sda", tarfile.BLKTYPE, "")], "block device"),
    ([("dev/mem", tarfile.CHRTYPE, "")], "character device"),
    ([("dev/fifo", tarfile.FIFOTYPE, "")], "fifo"),
    ([("etc/.wh..", tarfile.REGTYPE, "")], "whiteout"),
    ([("etc/.wh...", tarfile.REGTYPE, "")], "whiteout"),
    ([("../.wh.etc", tarfile.REGTYPE, "")], "contains '..'"),
    # names that read as others in every listing (re-probe of 2026-12-06: bundles refused
    # them, layers took them)
    ([("etc\u202egnp.exe", tarfile.REGTYPE, "x")], r"U\+202E"),
    ([("bin/s\u200bh", tarfile.REGTYPE, "x")], r"U\+200B"),
    ([("bin/a\u2028b", tarfile.REGTYPE, "x")], r"U\+2028"),
    ([("bin/a\nb", tarfile.REGTYPE, "x")], r"U\+000A"),
], ids=["dotdot", "dotdot-deep", "absolute", "symlink-absolute", "symlink-escape",
        "symlink-escape-deep", "hardlink-outside", "hardlink-dotdot", "hardlink-forward",
        "block-device", "char-device", "fifo", "whiteout-dot", "whiteout-dotdot",
        "whiteout-outside", "bidi", "zero-width", "line-separator", "newline"])
def test_bad_layer_entries_are_refused_and_nothing_is_stored(
    tmp_path: Path, entries: list[tuple[str, bytes, str]], match: str
) -> None:
    refused(tmp_path, GOOD + entries, match)


def test_a_blob_whose_digest_does_not_match_is_refused(tmp_path: Path) -> None:
    src = make_layout(tmp_path / "img", layer(GOOD))
    idx = json.loads((src / "index.json").read_text())
    mhex = idx["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((src / "blobs/sha256" / mhex).read_bytes())
    lhex = manifest["layers"][0]["digest"].split(":")[1]
    blob = src / "blobs/sha256" / lhex
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # same size, other content
    blob.write_bytes(bytes(data))
    store = ImageStore(tmp_path / "store")
    with pytest.raises(InvalidInput, match="digest mismatch"):
        store.import_image(src, "bad")
    assert store.list() == []


def test_a_layer_that_is_not_its_diff_id_is_refused(tmp_path: Path) -> None:
    src = make_layout(tmp_path / "img", layer(GOOD), diff=b"something else")
    with pytest.raises(InvalidInput, match="diff_id"):
        verify(DirSource(src), None, 1 << 30)


def test_an_image_over_the_disk_budget_is_refused(tmp_path: Path) -> None:
    big = [("blob", tarfile.REGTYPE, "x" * 300_000)]
    src = make_layout(tmp_path / "img", layer(big))
    store = ImageStore(tmp_path / "store", budget=100_000)  # it expands past 100 kB
    with pytest.raises(InvalidInput, match="disk budget"):
        store.import_image(src, "big")
    assert store.list() == []


def test_links_in_the_layout_and_bad_digests_in_the_index_are_refused(tmp_path: Path) -> None:
    src = make_layout(tmp_path / "img", layer(GOOD))
    idx = json.loads((src / "index.json").read_text())
    idx["manifests"][0]["digest"] = "sha256:../../etc/passwd"
    (src / "index.json").write_text(json.dumps(idx))
    with pytest.raises(InvalidInput, match="not sha256"):
        verify(DirSource(src), None, 1 << 30)
    (src / "index.json").unlink()
    (src / "index.json").symlink_to("/etc/hostname")
    with pytest.raises(InvalidInput, match=r"index\.json is a symbolic link"):
        verify(DirSource(src), None, 1 << 30)


def test_the_layer_and_layout_build_is_reproducible(tmp_path: Path) -> None:
    fs = build.Rootfs()
    fs.data["etc/motd"] = b"hi\n"
    fs.links["usr/bin/sh"] = "busybox"
    a, b = build.layer_tar(fs, 1_700_000_000), build.layer_tar(fs, 1_700_000_000)
    assert a == b
    names = [m.name for m in tarfile.open(fileobj=io.BytesIO(a))]
    assert names == sorted(names)
    assert all(m.mtime == 1_700_000_000 and m.uid == 0
               for m in tarfile.open(fileobj=io.BytesIO(a)))
    d1 = build.write_layout(tmp_path / "one", a, "x", 1_700_000_000, ["/bin/sh"])
    d2 = build.write_layout(tmp_path / "two", b, "x", 1_700_000_000, ["/bin/sh"])
    assert d1 == d2
    verify(DirSource(tmp_path / "one"), "x", 1 << 30)


def test_an_images_source_key_follows_its_bundle_and_shared_helpers(tmp_path: Path) -> None:
    nf, shared = tmp_path / "nat", tmp_path / "_shared"
    (nf / "files").mkdir(parents=True)
    shared.mkdir()
    (nf / "files" / "nat.py").write_text("x = 1\n")
    (shared / "nfcommon.py").write_text("y = 1\n")
    k1 = build.source_key(nf, ["nftables"])
    assert build.source_key(nf, ["nftables"]) == k1  # deterministic
    assert build.source_key(nf, ["nftables", "conntrack"]) != k1
    (shared / "nfcommon.py").write_text("y = 2\n")
    k2 = build.source_key(nf, ["nftables"])
    assert k2 != k1
    (nf / "files" / "nat.py").write_text("x = 2\n")
    assert build.source_key(nf, ["nftables"]) != k2


@pytest.mark.parametrize("index", ["{bad", '{"manifests": [1]}', '{"manifests": "abc"}', "[]",
                                   None])
def test_a_corrupt_store_index_is_named_not_a_crash(tmp_path: Path, index: str | None) -> None:
    """index.json that is not JSON, not an OCI index, or a directory: DriverError naming it
    (`netfate images list` prints it as one line; new-user probe, 2026-12-03)."""
    store = ImageStore(tmp_path / "store")
    store.layout.mkdir(parents=True)
    if index is None:
        (store.layout / "index.json").mkdir()
    else:
        (store.layout / "index.json").write_text(index)
    with pytest.raises(DriverError, match=r"index\.json is corrupt"):
        store.list()
    with pytest.raises(DriverError, match=r"index\.json is corrupt"):
        store.remove("x")
