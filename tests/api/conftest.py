"""Fixtures for northbound API tests: a live orchestrator per test (SQLite in tmp_path, its own
embedded nats-server, loopback ports picked free), an HTTP client, and fake agents. No root."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netfate.db import Database
from tests.api.harness import AUTH, TOKEN, FakeAgent, LiveOrchestrator, LoopThread

MakeLive = Callable[..., LiveOrchestrator]
MakeAgent = Callable[..., FakeAgent]


@pytest.fixture(autouse=True)
def no_database_on_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The orchestrator never opens a database session on its event loop (it would stall
    every bus handler): each test fails if it did."""
    calls: list[str] = []
    monkeypatch.setattr(Database, "on_event_loop", staticmethod(calls.append))
    yield
    assert not calls, f"database sessions opened on the event loop at {sorted(set(calls))}"


@pytest.fixture
def make_live(tmp_path: Path) -> Iterator[MakeLive]:
    """Start orchestrators with Settings overrides; each is stopped after the test, and its
    nats-server must be gone by then."""
    started: list[LiveOrchestrator] = []

    def make(state_dir: Path | None = None, **overrides: Any) -> LiveOrchestrator:
        live = LiveOrchestrator(state_dir or tmp_path / f"state{len(started)}", **overrides)
        started.append(live)
        live.start()
        return live

    try:
        yield make
    finally:
        errors = []
        for live in reversed(started):
            try:
                live.stop()
            except AssertionError as e:
                errors.append(str(e))
        assert not errors, errors


@pytest.fixture
def live(make_live: MakeLive) -> LiveOrchestrator:
    return make_live()


@pytest.fixture
def client(live: LiveOrchestrator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=15, headers=AUTH) as c:
        yield c


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    lt = LoopThread()
    try:
        yield lt
    finally:
        lt.close()


@pytest.fixture
def make_agent(live: LiveOrchestrator, loop: LoopThread) -> Iterator[MakeAgent]:
    """Fake agents on the live orchestrator's bus, started (registered); closed after."""
    agents: list[FakeAgent] = []

    def make(name: str, **kw: Any) -> FakeAgent:
        a = FakeAgent(loop, live.nats_url, name, **kw)
        agents.append(a)
        a.start()
        return a

    try:
        yield make
    finally:
        for a in agents:
            a.kill()


@pytest.fixture
def cli_at_live(live: LiveOrchestrator, monkeypatch: pytest.MonkeyPatch,
                tmp_path: Path) -> Iterator[None]:
    """The CLI (`netfate ...` through typer's CliRunner) pointed at the live orchestrator
    with its operator token; its cached API URL and token forgotten before and after."""
    from netfate.cli import client as cli_client

    monkeypatch.setenv("NETFATE_API", live.url)
    monkeypatch.setenv("NETFATE_API_TOKEN", TOKEN)
    monkeypatch.setenv("NETFATE_RUN_DIR", str(tmp_path / "run"))
    cli_client.api.cache_clear()
    cli_client.auth.cache_clear()
    try:
        yield
    finally:
        cli_client.api.cache_clear()
        cli_client.auth.cache_clear()
