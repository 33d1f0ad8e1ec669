"""`netfate bench login | handover | failover` bring up a testbed of their own and take it
down after: over a running testbed they are refused, naming it and the way out
(--replace-testbed), and nothing is touched (a probe of 2026-12-06 lost its testbed to
`bench login`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from netfate.cli.main import app
from netfate.testbed import lifecycle


@pytest.mark.parametrize("bench", ["login", "handover", "failover"])
def test_a_bench_that_replaces_the_testbed_is_refused_over_a_running_one(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, bench: str) -> None:
    monkeypatch.setenv("NETFATE_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(lifecycle, "load_state", lambda: {"topology": {"name": "default"}})
    ran: list[Any] = []
    monkeypatch.setattr(lifecycle, "down", lambda *a, **k: ran.append("down"))
    monkeypatch.setattr(lifecycle, "up", lambda *a, **k: ran.append("up"))
    r = CliRunner().invoke(app, ["bench", bench, "--runs", "1"])
    assert r.exit_code == 2, r.output
    text = " ".join(r.output.split())
    assert "the running testbed would be removed" in text and "--replace-testbed" in text
    assert ran == []
