"""Bundle safety: only plain files under the root; sha256 identity; the catalogue is valid."""

import io
import tarfile
from pathlib import Path

import pytest
import yaml

from netfate import catalogue
from netfate.bundle import BundleStore, build_bundle, inspect_bundle, sha256_of
from netfate.errors import InvalidInput, NotFound

DESC = {"name": "probe", "version": "1", "ports": [{"name": "lan"}]}


def make_tgz(members: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tar.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(m[1]))
    return buf.getvalue()


def good_members() -> list[tarfile.TarInfo | tuple[str, bytes]]:
    return [("descriptor.yaml", yaml.safe_dump(DESC).encode()),
            ("scripts/start", b"#!/bin/bash\n"), ("scripts/stop", b"#!/bin/bash\n")]


def test_good_bundle_is_stored_by_sha256(tmp_path: Path) -> None:
    data = make_tgz(good_members())
    store = BundleStore(tmp_path)
    b = store.add(data)
    assert b.sha256 == sha256_of(data)
    assert b.script("start") is not None and b.script("pause") is None
    assert store.add(data).root == b.root  # idempotent
    assert [x.sha256 for x in store.list()] == [b.sha256]


def test_sha256_mismatch_is_refused_and_nothing_written(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="sha256"):
        BundleStore(tmp_path).add(make_tgz(good_members()), "0" * 64)
    assert list(tmp_path.iterdir()) == []


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    t = tarfile.TarInfo(name)
    t.type = kind
    t.linkname = target
    return t


def _dev(name: str) -> tarfile.TarInfo:
    t = tarfile.TarInfo(name)
    t.type = tarfile.CHRTYPE
    t.devmajor, t.devminor = 1, 3
    return t


@pytest.mark.parametrize(("extra", "words"), [
    (("../evil", b"x"), r"'\.\.'"),
    (("scripts/../../evil", b"x"), r"'\.\.'"),
    (("/etc/evil", b"x"), "absolute"),
    (_link("scripts/create", "/etc/passwd", tarfile.SYMTYPE), "link"),
    (_link("scripts/create", "descriptor.yaml", tarfile.LNKTYPE), "link"),
    (_dev("scripts/null"), "device"),
    (("scripts/frobnicate", b"x"), "unknown lifecycle"),
])
def test_unsafe_bundles_are_refused(tmp_path: Path, extra: object, words: str) -> None:
    data = make_tgz([*good_members(), extra])  # type: ignore[list-item]
    with pytest.raises(InvalidInput, match=words):
        BundleStore(tmp_path).add(data)
    assert not any(p.name != "" for p in tmp_path.glob("*/descriptor.yaml"))
    assert not (tmp_path / "evil").exists() and not Path("/etc/evil").exists()


def test_missing_descriptor_scripts_and_garbage(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"descriptor\.yaml"):
        inspect_bundle(make_tgz([("scripts/start", b"")]))
    with pytest.raises(InvalidInput, match="required scripts"):
        inspect_bundle(make_tgz([("descriptor.yaml", yaml.safe_dump(DESC).encode())]))
    with pytest.raises(InvalidInput, match="tgz"):
        inspect_bundle(b"not a tarball")
    with pytest.raises(InvalidInput, match="YAML"):
        inspect_bundle(make_tgz([("descriptor.yaml", b"name: [unclosed")]))


def test_unknown_sha_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        BundleStore(tmp_path).get("a" * 64)


def test_a_reference_that_is_not_a_digest_never_reaches_outside_the_store(
        tmp_path: Path) -> None:
    """A 64-character path (here an absolute one, holding a descriptor) is not a bundle:
    get refuses it and remove removes nothing (new-user probe, 2026-12-03)."""
    elsewhere = tmp_path / ("e" * (64 - len(str(tmp_path)) - 1))
    assert len(str(elsewhere)) == 64
    (elsewhere / "scripts").mkdir(parents=True)
    (elsewhere / "descriptor.yaml").write_text('name: evil\nversion: "1"\n')
    store = BundleStore(tmp_path / "store")
    for ref in (str(elsewhere), "../" * 21 + "x", "g" * 64, "A" * 63 + "/"):
        with pytest.raises(NotFound, match="64 hex digits"):
            store.get(ref)
        with pytest.raises(InvalidInput, match="64 hex digits"):
            store.remove(ref)
    assert (elsewhere / "descriptor.yaml").is_file()


def test_a_control_character_in_a_descriptor_is_refused_as_bad_yaml() -> None:
    for bad in (b"name: a\x00b\n", b"name: a\x1bb\n", "name: a\ufffeb\n".encode()):
        with pytest.raises(InvalidInput, match="not valid YAML"):
            inspect_bundle(make_tgz([("descriptor.yaml", bad)]))


def test_catalogue_bundles_are_valid_and_reproducible() -> None:
    for name in catalogue.NAMES:
        a, b = catalogue.bundle_bytes(name), catalogue.bundle_bytes(name)
        assert a == b, f"{name} bundle is not reproducible"
        desc, _ = inspect_bundle(a)
        assert desc.name == name
        assert "native" in desc.flavours


def test_build_bundle_roundtrip(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "scripts").mkdir(parents=True)
    (src / "descriptor.yaml").write_text(yaml.safe_dump(DESC))
    for s in ("start", "stop"):
        (src / "scripts" / s).write_text("#!/bin/bash\n")
    b = BundleStore(tmp_path / "store").add(build_bundle(src))
    assert b.descriptor.name == "probe"
