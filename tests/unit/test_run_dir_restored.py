"""The run dir a test (or a CLI command it invokes in-process) sets does not outlive it
(tests/conftest.py): the two tests below run in this order."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from netfate import paths


def test_a_cli_command_sets_the_run_dir_from_its_settings(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    from netfate.cli.main import app

    monkeypatch.setenv("NETFATE_RUN_DIR", str(tmp_path / "run"))
    out = CliRunner().invoke(app, ["testbed", "status", "--json"])
    assert paths.run_dir() == tmp_path / "run", out.output


def test_the_next_test_has_the_default_run_dir_again() -> None:
    assert paths.run_dir() == paths.DEFAULT_RUN_DIR
