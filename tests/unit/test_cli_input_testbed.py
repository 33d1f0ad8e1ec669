"""`netfate testbed exec | login` check their host and user names as `testbed move` does,
and an error quotes a long value cut short (tester's report, bug 4: `testbed exec` echoed a
5,000-character host name back)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from netfate.cli.main import app


@pytest.fixture(autouse=True)
def _not_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A name let through would meet need_root() (exit 2 "needs root"), not a testbed."""
    monkeypatch.setenv("NETFATE_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)


def _refused(r: Result, words: str) -> None:
    assert r.exit_code == 2, r.output
    assert "needs root" not in r.output, r.output
    assert words in " ".join(r.output.replace("│", " ").split()), r.output


LONG = "h" * 5000


@pytest.mark.parametrize("argv", [
    ["exec", LONG, "--", "true"],
    ["login", LONG, "user1", "--password", "x"],
    ["login", "client1", LONG, "--password", "x"],
    ["move", LONG, "cpe2"],
])
def test_a_long_name_is_refused_and_not_echoed_whole(argv: list[str]) -> None:
    r = CliRunner().invoke(app, ["testbed", *argv])
    _refused(r, f"'{'h' * 64}'... (5000 characters) is not a name")
    assert r.output.count("h") < 300 and len(r.output) < 2000, r.output


@pytest.mark.parametrize("argv", [
    ["exec", "../client1", "--", "true"],
    ["exec", "Client1", "--", "true"],
    ["login", "client1;x", "user1", "--password", "x"],
    ["move", "client 1", "cpe2"],
])
def test_exec_and_login_check_names_as_move_does(argv: list[str]) -> None:
    _refused(CliRunner().invoke(app, ["testbed", *argv]), "is not a name")


def test_a_good_name_gets_past_the_check() -> None:
    r = CliRunner().invoke(app, ["testbed", "exec", "client1", "--", "true"])
    assert r.exit_code == 2 and "needs root" in r.output, r.output
