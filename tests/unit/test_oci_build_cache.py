"""The build cache of the catalogue's images (oci/build_cache.py): a store emptied by
`testbed down` is filled from the cache, not by building again; any change of what an image
is made of, a damaged entry, or --force builds it again."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from netfate.oci import build, build_cache
from netfate.oci.layout import IDLE_CMD
from netfate.oci.store import ImageStore


def tiny_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("etc/hostname")
        data = b"nf\n"
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every image actually built (by tag), with a tiny rootfs instead of the host's tools."""
    made: list[str] = []

    def write_image(dest: Path, src: Path, tag: str, capabilities: list[str], epoch: int = 0,
                    labels: dict[str, str] | None = None) -> str:
        made.append(tag)
        return build.write_layout(dest, tiny_tar(), tag, epoch, IDLE_CMD, labels)

    monkeypatch.setattr(build, "write_image", write_image)
    return made


def test_a_store_emptied_by_down_is_filled_from_the_cache(tmp_path: Path,
                                                          builds: list[str]) -> None:
    cache = tmp_path / "cache"
    first = build.build_nf_image(ImageStore(tmp_path / "run1"), "firewall", cache=cache)
    again = build.build_nf_image(ImageStore(tmp_path / "run2"), "firewall", cache=cache)
    assert builds == [first.tag]
    assert again == first
    assert [p.name for p in cache.iterdir() if not p.name.startswith(".")] == [first.tag]


def test_new_host_packages_or_another_epoch_build_again(tmp_path: Path, builds: list[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    build.build_nf_image(ImageStore(tmp_path / "a"), "firewall", cache=cache)
    monkeypatch.setattr(build_cache, "host_packages", lambda: "after apt upgrade")
    build.build_nf_image(ImageStore(tmp_path / "b"), "firewall", cache=cache)
    build.build_nf_image(ImageStore(tmp_path / "c"), "firewall", 7, cache=cache)
    build.build_nf_image(ImageStore(tmp_path / "d"), "firewall", 7, cache=cache)
    assert len(builds) == 3


def test_a_damaged_entry_is_built_again_not_trusted(tmp_path: Path, builds: list[str]) -> None:
    cache = tmp_path / "cache"
    info = build.build_nf_image(ImageStore(tmp_path / "a"), "firewall", cache=cache)
    for blob in (cache / info.tag / "blobs" / "sha256").iterdir():
        blob.write_bytes(b"tampered")
    again = build.build_nf_image(ImageStore(tmp_path / "b"), "firewall", cache=cache)
    assert len(builds) == 2 and again.digest == info.digest


def test_force_and_no_cache_build(tmp_path: Path, builds: list[str]) -> None:
    cache = tmp_path / "cache"
    build.build_nf_image(ImageStore(tmp_path / "a"), "firewall", cache=cache)
    build.build_nf_image(ImageStore(tmp_path / "b"), "firewall", cache=cache, force=True)
    build.build_nf_image(ImageStore(tmp_path / "c"), "firewall", cache=None)
    assert len(builds) == 3
    assert not any(p.name.startswith(".build-") for p in cache.iterdir())


def test_a_failed_build_leaves_the_cache_as_it_was(tmp_path: Path, builds: list[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    info = build.build_nf_image(ImageStore(tmp_path / "a"), "firewall", cache=cache)

    def broken(*_: object, **__: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(build, "write_image", broken)
    with pytest.raises(OSError, match="disk full"):
        build.build_nf_image(ImageStore(tmp_path / "b"), "firewall", cache=cache, force=True)
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == [info.tag]
    assert not any(p.name.startswith(".build-") for p in cache.iterdir())
