"""The run dir is NetFATE's only if it made it or took it empty (netfate.paths): `testbed
down` removes nothing else, and `up` takes nothing else (probes of 2026-12-06: NETFATE_RUN_DIR
named /tmp/x, a directory holding a marker that was a symbolic link, a symlinked
/run/netfate, a pre-existing empty directory)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from netfate import paths
from netfate.errors import Conflict, InvalidInput


@pytest.fixture
def at(tmp_path: Path) -> Iterator[Path]:
    was = paths.run_dir()
    yield tmp_path
    paths.configure(was)


def use(d: Path) -> Path:
    paths.configure(d)
    return d


def test_a_new_run_dir_is_made_marked_and_removed_whole(at: Path) -> None:
    d = use(at / "a" / "run")
    assert paths.claim() == d and paths.marker_kind(d) == paths.MADE
    (d / "nodes").mkdir()
    (d / "odd").write_text("written later")
    assert paths.claim() == d  # marked: taken again as it is
    assert paths.remove(d) == paths.MADE and not d.exists()


def test_someone_elses_directory_is_refused_and_kept(at: Path) -> None:
    d = use(at / "x")
    (d / "sub").mkdir(parents=True)
    (d / "important.txt").write_text("precious")
    with pytest.raises(InvalidInput, match=r"important\.txt.*no NetFATE marker"):
        paths.claim()
    assert paths.remove(d) is None
    assert sorted(os.listdir(d)) == ["important.txt", "sub"]


def test_an_empty_existing_directory_is_adopted_and_kept(at: Path) -> None:
    d = use(at / "pre")
    d.mkdir()
    paths.claim()
    assert paths.marker_kind(d) == paths.ADOPTED
    (d / "ovs").mkdir()
    (d / "testbed.json").write_text("{}")
    (d / "users-file").write_text("put there later by its owner")
    assert paths.remove(d) == paths.ADOPTED
    assert os.listdir(d) == ["users-file"]  # the directory and what is not NetFATE's stay


def test_a_marker_that_is_a_link_is_no_marker(at: Path) -> None:
    victim = at / "victim.txt"
    victim.write_text("precious")
    d = use(at / "r1")
    d.mkdir()
    (d / "userfile").write_text("data")
    (d / paths.MARKER).symlink_to(victim)
    assert paths.marker_kind(d) is None and paths.removable(d) is None
    with pytest.raises(InvalidInput, match="is a symbolic link, not a marker NetFATE wrote"):
        paths.claim()
    assert victim.read_text() == "precious" and (d / "userfile").exists()
    (d / paths.MARKER).unlink()
    os.link(victim, d / paths.MARKER)  # a hard link to another file is none either
    assert paths.marker_kind(d) is None


@pytest.mark.parametrize("kind", ["link", "file"])
def test_a_run_dir_that_is_a_link_or_a_file_is_refused(at: Path, kind: str) -> None:
    target = at / "sysdir"
    target.mkdir()
    (target / "config").write_text("important")
    d = use(at / "lnk")
    if kind == "link":
        d.symlink_to(target)
    else:
        d.write_text("x")
    with pytest.raises(InvalidInput, match="symbolic link" if kind == "link" else
                       "not a directory"):
        paths.claim()
    assert paths.remove(d) is None and os.path.lexists(d)
    assert (target / "config").read_text() == "important" and not (target / paths.MARKER).exists()


def test_a_directory_only_netfate_wrote_in_is_taken(at: Path) -> None:
    """`images import` writes the run dir before any `up` marked it."""
    d = use(at / "img")
    (d / "images").mkdir(parents=True)
    assert paths.removable(d) == paths.ADOPTED
    paths.claim()
    assert paths.marker_kind(d) == paths.ADOPTED


def test_one_holder_of_the_lock_at_a_time(at: Path) -> None:
    d = use(at / "lock")
    paths.claim()
    with paths.locked(d):
        with pytest.raises(Conflict, match="a `netfate testbed up` is running"), \
                paths.locked(d, "testbed down"):
            pass
    with paths.locked(d):
        pass


def test_every_entry_the_code_writes_at_the_top_is_known() -> None:
    """An entry missing from KNOWN_ENTRIES would make a run dir a command wrote in look like
    someone else's to `up`, and stay behind in an adopted one."""
    import re

    src = Path(__file__).parents[2] / "src" / "netfate"
    written = {m for f in src.rglob("*.py")
               for m in re.findall(r'run_dir\(\) / "([^"/]+)"', f.read_text())}
    assert written and written <= paths.KNOWN_ENTRIES, written - paths.KNOWN_ENTRIES


@pytest.mark.parametrize("content", [b"", b"garbage\n", b" adopted: x\n", b"Adopted: x\n",
                                     b"\xef\xbb\xbfadopted: x\n", b"made"])
def test_a_marker_of_other_content_is_no_marker(at: Path, content: bytes) -> None:
    """Anything but the two words NetFATE writes counted as MADE: `down` removed the
    directory with its files (third probe of 2026-12-06)."""
    d = use(at / "d")
    d.mkdir()
    (d / "userfile").write_text("precious")
    (d / paths.MARKER).write_bytes(content)
    assert paths.marker_kind(d) is None and paths.remove(d) is None
    assert (d / "userfile").read_text() == "precious"
    with pytest.raises(InvalidInput, match="does not start with 'made:' or 'adopted:'"):
        paths.claim()


def test_the_marker_is_written_whole_with_one_link(at: Path) -> None:
    d = use(at / "w")
    paths.claim()
    assert sorted(os.listdir(d)) == [paths.MARKER]  # no temporary file left
    assert os.lstat(d / paths.MARKER).st_nlink == 1
    assert (d / paths.MARKER).read_text().startswith("made: ")


def test_removal_stays_on_the_run_dirs_file_system_and_follows_no_link(at: Path) -> None:
    """A bind mount at `images` had its source emptied by `down` (third probe)."""
    import subprocess

    d = use(at / "m")
    paths.claim()
    src = at / "src"
    src.mkdir()
    (src / "userfile").write_text("precious")
    (d / "images").mkdir()
    (d / "nodes" / "a" / "b").mkdir(parents=True)
    (d / "nodes" / "a" / "b" / "f").write_text("x")
    (d / "nodes" / "link").symlink_to(src)
    deep = d / "bench"
    for _ in range(300):
        deep = deep / "d"
    deep.mkdir(parents=True)
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "--bind", str(src), str(d / "images")], check=False,
        capture_output=True).returncode == 0
    try:
        paths.remove(d)
        assert (src / "userfile").read_text() == "precious"
        if mounted:
            assert (d / "images" / "userfile").exists()  # the mount and its parent stay
            assert sorted(os.listdir(d)) == ["images"]
        else:
            assert not d.exists()
    finally:
        if mounted:
            subprocess.run(["umount", str(d / "images")], check=False)


def test_a_marker_left_half_written_by_a_crash_does_not_block_the_next_claim(at: Path) -> None:
    d = use(at / "h")
    d.mkdir()
    (d / f"{paths.MARKER}.4242").write_text("mad")
    paths.claim()
    assert paths.marker_kind(d) == paths.ADOPTED
    paths.remove(d)
    assert os.listdir(d) == []
