"""Fixtures for RADIUS tests: the orchestrator in-process (uvicorn in a thread, SQLite in a tmp
dir, its embedded nats-server) and FreeRADIUS from its private config, both on loopback with
ports picked free, both stopped by PID afterwards and checked gone. No root, no testbed."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from netfate.db import Database
from netfate.orchestrator.app import create_app
from netfate.orchestrator.settings import Settings
from netfate.radius import service
from netfate.radius.client import RadiusClient
from netfate.radius.server import FreeRadius
from netfate.radius.settings import API_KEY_HEADER, RadiusSettings

SECRET = "portal-secret-0123456789"
API_KEY = "api-key-abcdefghijklmnopqrstuvwxyz"
BACKOFF = 3.0
MAX_FAILURES = 5
# Users of the shared stack, with passwords distinctive enough to grep for.
USERS = {"user1": "Pw-user1-Tr0ub4dor&3", "user2": "Pw-user2-correct-horse", "user3": "Pw-user3-x"}


@pytest.fixture(autouse=True)
def no_database_on_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The orchestrator never opens a database session on its event loop (tests/api has the
    same check)."""
    calls: list[str] = []
    monkeypatch.setattr(Database, "on_event_loop", staticmethod(calls.append))
    yield
    assert not calls, f"database sessions opened on the event loop at {sorted(set(calls))}"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID runs (a zombie does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# The operator token of the test orchestrators (netfate.api_auth) and its header.
TOKEN = "test-operator-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class LiveOrchestrator:
    """create_app under uvicorn in a thread, on a free loopback port."""

    def __init__(self, state_dir: Path, radius: RadiusSettings | None,
                 aaa: bool = False) -> None:
        self.port = free_port()
        self.settings = Settings(state_dir=state_dir, db_url=None, nats_url=None,
                                 host="127.0.0.1", port=self.port, command_timeout=2.0,
                                 reconcile_interval=0.5, node_timeout=60.0, policy="netfate",
                                 api_token=TOKEN)
        self.app = create_app(self.settings)
        if radius is not None:
            service.pin_settings(self.app, radius)
        self.orch = self.app.state.orchestrator
        if aaa:  # accounting, Session-Timeout and the DAE server, with these settings
            self.orch.aaa_settings = radius
        self.server = uvicorn.Server(uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on",
            timeout_graceful_shutdown=5))
        self.thread = threading.Thread(target=self.server.run, name="orchestrator", daemon=True)
        self.nats_pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the orchestrator did not start")
            time.sleep(0.02)
        assert self.orch.nats is not None and self.orch.nats.proc is not None
        self.nats_pid = self.orch.nats.proc.pid

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the orchestrator thread did not stop"
        if self.nats_pid is not None and not wait_gone(self.nats_pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.nats_pid, signal.SIGKILL)
            raise AssertionError(f"nats-server (pid {self.nats_pid}) outlived the orchestrator")


@dataclass
class Stack:
    orchestrator: LiveOrchestrator
    freeradius: FreeRadius
    settings: RadiusSettings
    http: httpx.Client

    def client(self, **kw: Any) -> RadiusClient:
        kw.setdefault("timeout", 3.0)
        kw.setdefault("retries", 1)
        return RadiusClient(self.settings.host, self.settings.port, self.settings.secret, **kw)

    def headers(self) -> dict[str, str]:
        return {API_KEY_HEADER: self.settings.api_key}


def radius_settings(**kw: Any) -> RadiusSettings:
    base = RadiusSettings(host="127.0.0.1", port=free_port(socket.SOCK_DGRAM),
                          acct_port=free_port(socket.SOCK_DGRAM),
                          dae_port=free_port(socket.SOCK_DGRAM), secret=SECRET,
                          api_key=API_KEY, clients=("127.0.0.1",), pool="10.90.100.0/22",
                          max_failures=MAX_FAILURES, failure_window=60.0, backoff=BACKOFF,
                          max_tracked=1000, session_timeout=None, reject_delay=0.0,
                          api_timeout=5.0)
    return base.model_copy(update=kw).check()


@contextlib.contextmanager
def running_stack(state_dir: Path, aaa: bool = False, **kw: Any) -> Iterator[Stack]:
    """Orchestrator + FreeRADIUS; afterwards both are stopped and their PIDs checked gone.
    ``aaa``: the orchestrator also runs accounting and the DAE server (orchestrator/aaa.py)."""
    settings = radius_settings(**kw)
    orch = LiveOrchestrator(state_dir, settings, aaa=aaa)
    fr: FreeRadius | None = None
    fr_pid: int | None = None
    try:
        orch.start()
        fr = service.start_freeradius(state_dir, orch.url, settings)
        fr_pid = fr.pid
        with httpx.Client(base_url=orch.url, timeout=15, headers=AUTH) as http:
            yield Stack(orch, fr, settings, http)
    finally:
        if fr is not None:
            fr.stop()
        orch.stop()
        if fr_pid is not None:
            assert wait_gone(fr_pid), f"FreeRADIUS (pid {fr_pid}) outlived its stop()"
            assert not (fr.dir / "freeradius.pid").exists() if fr is not None else True


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One orchestrator + FreeRADIUS for a test module, with USERS created."""
    with running_stack(tmp_path_factory.mktemp("radius")) as st:
        for name, pw in USERS.items():
            st.http.post("/api/v1/users", json={"name": name, "password": pw}
                         ).raise_for_status()
        yield st


_mac_counter = iter(range(1, 1 << 24))


@pytest.fixture
def mac() -> str:
    """A client MAC no other test used: the rate limiter keys on it."""
    n = next(_mac_counter)
    return f"02-00-00-{n >> 16:02X}-{(n >> 8) & 0xFF:02X}-{n & 0xFF:02X}"
