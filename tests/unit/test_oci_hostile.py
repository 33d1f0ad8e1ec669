"""Hostile OCI layouts and archives (found by the breaker pass): each is refused with an
InvalidInput naming what is wrong, never a crash or a hang, and nothing is stored."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from netfate import archive
from netfate.errors import InvalidInput
from netfate.oci.layers import check_layer
from netfate.oci.layout import check_tag, digest_hex
from netfate.oci.store import ImageStore
from tests.unit.test_oci_images import GOOD, _rewrite, layer, make_layout


def _store_refuses(tmp_path: Path, src: Path, match: str, ref: str | None = "t") -> None:
    store = ImageStore(tmp_path / "store")
    with pytest.raises(InvalidInput, match=match):
        store.import_image(src, "x", ref)
    assert store.list() == []
    assert not (tmp_path / "store" / "layout" / "blobs").exists()


def _config(root: Path) -> tuple[dict[str, object], dict[str, object]]:
    idx = json.loads((root / "index.json").read_text())
    manifest = json.loads((root / "blobs/sha256" / idx["manifests"][0]["digest"][7:])
                          .read_bytes())
    cfg = json.loads((root / "blobs/sha256" / manifest["config"]["digest"][7:]).read_bytes())
    return manifest, cfg


@pytest.mark.parametrize("tag", ["abc\n", "a/b", "..", "a\0b", "x" * 129])
def test_tags_with_a_newline_slash_dots_nul_or_too_long_are_refused(tag: str) -> None:
    with pytest.raises(InvalidInput, match="image tag"):
        check_tag(tag)


def test_a_digest_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(InvalidInput, match="not sha256"):
        digest_hex("sha256:" + "a" * 64 + "\n")


@pytest.mark.parametrize("doc", ["[" * 200_000 + "]" * 200_000,
                                 '{"a":' * 100_000 + "1" + "}" * 100_000])
def test_a_deeply_nested_index_is_refused(tmp_path: Path, doc: str) -> None:
    src = make_layout(tmp_path / "img", layer(GOOD))
    (src / "index.json").write_text(doc)
    _store_refuses(tmp_path, src, "nested too deeply")


def test_annotations_that_are_not_an_object_are_refused(tmp_path: Path) -> None:
    src = make_layout(tmp_path / "img", layer(GOOD))
    idx = json.loads((src / "index.json").read_text())
    idx["manifests"][0]["annotations"] = ["org.opencontainers.image.ref.name"]
    (src / "index.json").write_text(json.dumps(idx))
    _store_refuses(tmp_path, src, "annotations are not an object")


@pytest.mark.parametrize(("key", "value", "match"), [
    ("rootfs", ["x"], "diff_ids differ"),
    ("config", [1], "'config' is not an object"),
    ("config", {"Entrypoint": "/bin/sh"}, "Entrypoint is not an array of strings"),
    ("config", {"Env": [1]}, "Env is not an array of strings"),
])
def test_a_config_of_the_wrong_shape_is_refused(tmp_path: Path, key: str, value: object,
                                                 match: str) -> None:
    src = make_layout(tmp_path / "img", layer(GOOD))
    manifest, cfg = _config(src)
    cfg[key] = value
    _rewrite(src, manifest, "config", json.dumps(cfg).encode())
    _store_refuses(tmp_path, src, match)


def test_a_fifo_or_device_is_refused_not_waited_on(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    os.mkfifo(tmp_path / "img" / "oci-layout")
    os.mkfifo(tmp_path / "archive")
    _store_refuses(tmp_path, tmp_path / "img", "not a regular file")
    _store_refuses(tmp_path, tmp_path / "archive", "not a regular file")
    _store_refuses(tmp_path, Path("/dev/zero"), "not a regular file")


@pytest.mark.parametrize("which", ["oci-layout", "index.json", "manifest"])
def test_a_directory_where_a_file_belongs_is_refused(tmp_path: Path, which: str) -> None:
    """os.fdopen raised IsADirectoryError (a traceback from `netfate images import`)."""
    root = make_layout(tmp_path / "img", layer(GOOD))
    if which == "manifest":
        idx = json.loads((root / "index.json").read_text())
        target = root / "blobs/sha256" / idx["manifests"][0]["digest"].split(":")[1]
    else:
        target = root / which
    target.unlink()
    target.mkdir()
    _store_refuses(tmp_path, root, "not a regular file")


def _pax_size_tar(value: str) -> bytes:
    body = f"size={value}\n"
    n = len(body) + 3
    while len(f"{n} {body}".encode()) != n:
        n = len(f"{n} {body}".encode())
    rec = f"{n} {body}".encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        pax = tarfile.TarInfo("pax")
        pax.type, pax.size = tarfile.XHDTYPE, len(rec)
        tar.addfile(pax, io.BytesIO(rec))
        tar.addfile(tarfile.TarInfo("f"))
    return buf.getvalue()


@pytest.mark.parametrize("value", ["\u00b2", "\u0663"])  # superscript two, Arabic-Indic 3
def test_a_pax_size_in_non_ascii_digits_is_refused(value: str) -> None:
    with pytest.raises(InvalidInput, match="pax size"):
        archive.read_tar(_pax_size_tar(value))
    with pytest.raises(InvalidInput, match="pax size"):
        check_layer(_pax_size_tar(value), "L")


@pytest.mark.parametrize(("entries", "match"), [
    # a/b -> .. is fine lexically; a/b/c is then c at the root, and c -> .. climbs out
    ([("a", tarfile.DIRTYPE, ""), ("a/b", tarfile.SYMTYPE, ".."),
      ("a/b/c", tarfile.SYMTYPE, "..")], "written through the symlink 'a/b'"),
    ([("x", tarfile.SYMTYPE, "."), ("x/x/y", tarfile.REGTYPE, "hi")],
     "written through the symlink 'x'"),
    ([("d", tarfile.DIRTYPE, ""), ("h", tarfile.LNKTYPE, "d")], "points at a directory"),
    ([("/".join(["d"] * 40) + "/s", tarfile.SYMTYPE, "x")], "directories deep"),
])
def test_layer_entries_through_links_or_links_to_directories_are_refused(
        entries: list[tuple[str, bytes, str]], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        check_layer(layer(entries), "L")


def test_a_symlink_replaced_by_a_directory_can_hold_entries() -> None:
    check_layer(layer([("a", tarfile.SYMTYPE, "."), ("a", tarfile.DIRTYPE, ""),
                       ("a/b", tarfile.REGTYPE, "x")]), "L")
