"""What every test shares: process-wide state a test may change is put back after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from netfate import paths


@pytest.fixture(autouse=True)
def _run_dir_restored() -> Iterator[None]:
    """A CLI command invoked in-process (typer's CliRunner) sets the process's run dir from
    its settings (cli.common.settings), e.g. a tmp dir the test put in NETFATE_RUN_DIR.
    Left set, every later test of the session ran its testbed there while subprocesses
    used /run/netfate: two ovs-vswitchds fought over the userspace datapath's `ovs-netdev`
    tap and every later port went without an OpenFlow number (63 tests failed in CI)."""
    before = paths.run_dir()
    yield
    paths.configure(before)
