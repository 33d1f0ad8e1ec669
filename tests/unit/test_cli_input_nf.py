"""A config or JSON document given empty or blank is refused, not applied as {} (tester's
report, bug 2: `netfate nf update cpe1 cpe1-user1-firewall "$CFG"` with CFG unset wiped the
firewall's rules); {} given explicitly is still a config. And `nf` commands check their
node and instance arguments before anything is done, quoting a long one cut short."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from netfate.cli.common import json_document, json_object
from netfate.cli.main import app
from netfate.errors import InvalidInput


@pytest.fixture(autouse=True)
def _nowhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No testbed, no API, no root: a check that came after need_root() exits 2 here."""
    monkeypatch.setenv("NETFATE_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("NETFATE_API", "http://127.0.0.1:9")  # never reached
    monkeypatch.setattr(os, "geteuid", lambda: 1000)


def _words(r: Result) -> str:
    return " ".join(r.output.replace("│", " ").split())


def _refused(r: Result, code: int, words: str) -> None:
    assert r.exit_code == code, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output and "needs root" not in r.output, r.output
    assert words in _words(r), r.output


@pytest.mark.parametrize("blank", ["", " ", "\n\t"])
@pytest.mark.parametrize("command", [
    ["nf", "update", "cpe1", "cpe1-user1-firewall"],
    ["nf", "deploy", "cpe1", "user1", "firewall", "--config"],
    ["nfs", "update", "0" * 8],
    ["nfs", "update", "0" * 8, "--config"],
    ["nfs", "instantiate", "firewall", "user1", "cpe1", "--config"],
    ["users", "add", "bob", "--password", "x", "--config"],
])
def test_an_empty_config_is_refused_not_applied_as_nothing(command: list[str],
                                                           blank: str) -> None:
    _refused(CliRunner().invoke(app, [*command, blank]), 1, "is empty (an unset variable?)")


@pytest.mark.parametrize("command", [
    ["nf", "update", "cpe1", "cpe1-user1-firewall"],
    ["nf", "deploy", "cpe1", "user1", "firewall", "--config"],
])
def test_an_empty_config_file_or_a_bare_at_is_refused(command: list[str],
                                                      tmp_path: Path) -> None:
    (tmp_path / "empty.json").write_text(" \n")
    _refused(CliRunner().invoke(app, [*command, f"@{tmp_path / 'empty.json'}"]), 1,
             f"config file {tmp_path / 'empty.json'} is empty")
    _refused(CliRunner().invoke(app, [*command, "@"]), 1, "give a file name after '@'")


def test_an_empty_state_document_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("")
    r = CliRunner().invoke(app, ["nf", "import-state", "cpe1", "cpe1-user1-firewall",
                                 str(tmp_path / "state.json")])
    _refused(r, 1, f"state document file {tmp_path / 'state.json'} is empty")
    r = CliRunner().invoke(app, ["nf", "import-state", "cpe1", "cpe1-user1-firewall", ""])
    _refused(r, 2, "the path is empty")


def test_bundle_add_refuses_an_empty_path() -> None:
    _refused(CliRunner().invoke(app, ["nf", "bundle-add", ""]), 2, "the path is empty")


def test_an_explicit_empty_object_is_a_config_and_none_is_not_given(tmp_path: Path) -> None:
    assert json_object("{}", "config") == {}
    assert json_object(" {} ", "config") == {}
    assert json_object(None, "config") == {}
    (tmp_path / "c.json").write_text('{"rules": []}')
    assert json_object(f"@{tmp_path / 'c.json'}", "config") == {"rules": []}
    for blank in ("", "   "):
        with pytest.raises(InvalidInput, match="config is empty"):
            json_object(blank, "config")
        with pytest.raises(InvalidInput, match="state document is empty"):
            json_document(blank, "state document")


def test_nf_update_with_an_explicit_empty_object_gets_past_the_check() -> None:
    """{} is a config: refused only for want of root here, not as input."""
    r = CliRunner().invoke(app, ["nf", "update", "cpe1", "cpe1-user1-firewall", "{}"])
    assert r.exit_code == 2 and "needs root" in r.output, r.output


LONG = "a" * 5000


@pytest.mark.parametrize("command", [
    ["nf", "update", LONG, "i1", "{}"],
    ["nf", "update", "cpe1", LONG, "{}"],
    ["nf", "status", LONG, "i1"],
    ["nf", "delete", "cpe1", LONG],
    ["nf", "import-state", LONG, "i1", "/dev/null"],
    ["nf", "list", "--node", LONG],
    ["nf", "deploy", LONG, "user1", "firewall"],
])
def test_node_and_instance_are_checked_and_a_long_one_is_cut_short(command: list[str]) -> None:
    r = CliRunner().invoke(app, command)
    _refused(r, 2, "(5000 characters) is not")
    assert r.output.count("a") < 300, r.output


@pytest.mark.parametrize(("command", "words"), [
    (["nf", "start", "../cpe1", "i1"], "'../cpe1' is not a name"),
    (["nf", "stop", "cpe1", "i1;reboot"], "'i1;reboot' is not an NF instance id"),
    (["nf", "update", "CPE1", "i1", "{}"], "'CPE1' is not a name"),
])
def test_bad_node_and_instance_names_are_named(command: list[str], words: str) -> None:
    _refused(CliRunner().invoke(app, command), 2, words)
