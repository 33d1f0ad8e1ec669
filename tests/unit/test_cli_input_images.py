"""`netfate images remove` checks its tag as `images import` does, and says when there was
nothing to remove (tester's report, bug 5: `images remove ''` and `images remove ../x`
exited 0 silently). Removal is documented idempotent: an absent tag is exit 0, said."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from netfate.cli.main import app
from netfate.errors import InvalidInput
from netfate.oci.store import ImageStore


@pytest.fixture(autouse=True)
def _run_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NETFATE_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # a check after need_root(): exit 2


def _words(r: Result) -> str:
    return " ".join(r.output.replace("│", " ").split())


def _refused(r: Result, words: str) -> None:
    assert r.exit_code == 2, r.output
    assert "needs root" not in r.output and words in _words(r), r.output


BAD_TAGS = ["", " ", "../x", "a/b", "-", ".hidden", "x\n", "t" * 129, "ä"]


@pytest.mark.parametrize("tag", [t for t in BAD_TAGS if not t.startswith("-")])
def test_remove_refuses_what_is_not_a_tag(tag: str) -> None:
    _refused(CliRunner().invoke(app, ["images", "remove", tag]), "must be [A-Za-z0-9_]")


@pytest.mark.parametrize("tag", BAD_TAGS)
def test_import_refuses_the_same_tags_before_reading_the_image(tag: str,
                                                               tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["images", "import", str(tmp_path), f"--tag={tag}"])
    _refused(r, "must be [A-Za-z0-9_]")


def test_a_long_tag_is_not_echoed_whole() -> None:
    r = CliRunner().invoke(app, ["images", "remove", "../" + "x" * 5000])
    _refused(r, "(5003 characters)")
    assert r.output.count("x") < 300


def test_removing_an_absent_tag_says_so_and_exits_0(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)  # only the tmp run dir is touched
    r = CliRunner().invoke(app, ["images", "remove", "firewall-9.9.9"])
    assert r.exit_code == 0, r.output
    assert "no image firewall-9.9.9 in the node's image store: nothing to remove" in _words(r)
    assert not (tmp_path / "run" / "images").exists()  # nothing made for nothing
    r = CliRunner().invoke(app, ["images", "remove", "firewall-9.9.9", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout) == {"tag": "firewall-9.9.9",
                                                         "removed": False}, r.output


def _tagged(store: ImageStore, tag: str) -> None:
    """An index naming `tag` (what remove edits; blobs do not matter to it)."""
    store.layout.mkdir(parents=True)
    (store.layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"digest": "sha256:" + "0" * 64, "annotations": {
            "org.opencontainers.image.ref.name": tag}}]}))


def test_removing_a_tag_that_is_there_says_so(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    _tagged(ImageStore(tmp_path / "run" / "images"), "fw-1")
    r = CliRunner().invoke(app, ["images", "remove", "fw-1"])
    assert r.exit_code == 0 and "image fw-1 removed" in _words(r), r.output
    assert ImageStore(tmp_path / "run" / "images").list() == []


def test_store_remove_checks_the_tag_and_says_whether_it_was_there(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    for bad in ("", "../x"):
        with pytest.raises(InvalidInput, match="must be"):
            store.remove(bad)
    assert store.remove("absent") is False and not store.root.exists()
    _tagged(store, "fw-1")
    assert store.remove("other") is False
    assert store.remove("fw-1") is True
    assert store.remove("fw-1") is False


@pytest.mark.parametrize(("argv", "words"), [
    (["build", "--source-date-epoch", "-1"], "-1 is not in 0-253402300799"),
    (["build", "--source-date-epoch", "253402300800"], "is not in 0-253402300799"),
    (["build", "--source-date-epoch", "٨٠"], "is not a number written in digits 0-9"),
    (["build", "../firewall"], "'../firewall' is not a name"),
    (["import", "/nonexistent", "--tag", "x", "--disk-budget-mb", "0"], "0 is not in 1-"),
    (["import", "/nonexistent", "--tag", "x", "--disk-budget-mb", "9" * 30],
     "is not a number written in digits 0-9"),
    (["import", "", "--tag", "x"], "the path is empty"),
    (["build-vm", "--cache", ""], "the path is empty"),
])
def test_numbers_names_and_paths_are_checked_up_front(argv: list[str], words: str) -> None:
    _refused(CliRunner().invoke(app, ["images", *argv]), words)


def test_source_date_epoch_from_the_environment_is_checked_too(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "-7")
    _refused(CliRunner().invoke(app, ["images", "build"]), "-7 is not in 0-")


def test_a_real_epoch_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten digits (today's epochs) and more: past the check, to need_root."""
    for epoch in ("1700000000", "253402300799"):
        r = CliRunner().invoke(app, ["images", "build", "--source-date-epoch", epoch])
        assert r.exit_code == 2 and "needs root" in r.output, r.output
