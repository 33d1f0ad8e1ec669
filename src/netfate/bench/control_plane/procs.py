"""The bench's processes, one supervised group: the orchestrator (``netfate orchestrator``,
SQLite, its embedded nats-server on a free loopback port) and the simulated agents
(``netfate.bench.sim_agents``). The orchestrator's nats-server is a member too, by the PID the
orchestrator records, so it is ended with the group even when the orchestrator could not end
it (it failed to start, or was killed): a bench that stops leaves nothing running."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from netfate.bench.control_plane.params import BenchError, Params
from netfate.ports import free_port
from netfate.supervisor import Group, StartError, Supervised

__all__ = ["Procs", "free_port", "sigterm_as_interrupt"]

HEALTH_TIMEOUT = 60.0  # seconds the orchestrator's API has to answer
ORCHESTRATOR_GRACE = 20.0  # it writes its database and profile on the way out


def orchestrator_argv(state: Path, api_port: int, nats_port: int,
                      profile: str | None, nats_url: str | None = None) -> list[str]:
    """Its command; with ``nats_url`` (a cluster's members) it uses that bus, else it starts
    its own nats-server on ``nats_port``."""
    bus = ["--nats-url", nats_url] if nats_url else ["--nats-port", str(nats_port)]
    args = ["-m", "netfate.cli.main", "orchestrator", "--state-dir", str(state),
            "--port", str(api_port), *bus]
    return [sys.executable, *(["-m", "cProfile", "-o", profile] if profile else []), *args]


def agents_argv(p: Params, nats_url: str, k: int, share: int, stats: Path,
                ready: Path) -> list[str]:
    return [
        sys.executable, "-m", "netfate.bench.sim_agents", "--nats", nats_url,
        "--nodes", str(p.nodes), "--first", str(k * share), "--count", str(share), "--per-conn",
        str(p.agents_per_conn), "--telemetry-interval", str(p.telemetry_interval),
        "--apply-delay-ms", str(p.apply_delay_ms), "--stats", str(stats), "--ready", str(ready),
    ]


class Procs:
    """What the bench started, to stop in order: agents, orchestrator, nats-server."""

    def __init__(self, tmp: Path, state: Path, profile: bool = False) -> None:
        self.tmp = tmp
        self.state = state
        self.group = Group()
        # uvicorn re-raises the SIGTERM it caught after its shutdown, which would end a
        # profiled run before cProfile writes its file; SIGINT unwinds through it.
        self.stop_signal = signal.SIGINT if profile else signal.SIGTERM
        self.nats = Supervised("nats-server", [], state / "nats", programs=("nats-server",))
        self.orchestrator: Supervised | None = None
        self.agents: list[Supervised] = []
        self.health: dict[str, Any] = {}

    def start_orchestrator(self, api_port: int, nats_port: int, profile: str | None,
                           db_url: str | None = None, max_in_flight: int | None = None,
                           nats_url: str | None = None) -> None:
        """Start it and wait until its API answers GET /health (kept in ``health``).
        BenchError with the end of its log if it exits or does not answer in time; then
        neither it nor its nats-server runs any more."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("NETFATE_NATS_URL", "NETFATE_DB_URL")}
        if max_in_flight is not None:
            env["NETFATE_MAX_EVENTS_IN_FLIGHT"] = str(max_in_flight)
        self.orchestrator = Supervised(
            "orchestrator", [*orchestrator_argv(self.state, api_port, nats_port, profile,
                                                nats_url),
                             *(["--db-url", db_url] if db_url else [])],
            self.tmp, programs=("netfate",), env=env, append_log=False)
        self.group.add(self.nats)
        url = f"http://127.0.0.1:{api_port}/api/v1/health"

        def healthy() -> bool:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                r = httpx.get(url, timeout=2)
                if r.status_code == 200:
                    self.health = dict(r.json())
                    return True
            return False

        try:
            self.group.start(self.orchestrator, ready=healthy, timeout=HEALTH_TIMEOUT,
                             grace=ORCHESTRATOR_GRACE, sig=self.stop_signal)
        except StartError as exc:
            raise BenchError(f"the orchestrator {exc.reason}: {exc.tail[-2000:]}") from exc
        self.group.note()

    def start_agents(self, p: Params, nats_url: str) -> list[tuple[Path, Path]]:
        """Start the simulated agents' processes; their (stats, ready) files."""
        files = []
        n = max(1, min(p.agent_procs, p.nodes))
        share = -(-p.nodes // n)
        for k in range(n):
            stats, ready = self.tmp / f"agents{k}.json", self.tmp / f"agents{k}.ready"
            sup = Supervised(f"agents{k}", agents_argv(p, nats_url, k, share, stats, ready),
                             self.tmp, programs=("netfate",), append_log=False)
            self.group.start(sup, grace=10)
            self.agents.append(sup)
            files.append((stats, ready))
        return files

    def check_agents(self) -> None:
        """BenchError with its log's end if a simulated agents' process has exited."""
        for a in self.agents:
            if a.exit_code() is not None:
                raise BenchError(f"simulated agents exited ({a.exit_code()}): {a.tail()}")

    def pids(self) -> dict[str, Any]:
        self.group.note()
        return {"orchestrator": self.group.started.get("orchestrator"),
                "nats_server": self.group.started.get("nats-server"),
                "agents": [self.group.started[a.name] for a in self.agents
                           if a.name in self.group.started]}

    def stop_agents(self) -> None:
        """SIGTERM: each writes its counters to its stats file on the way out."""
        for a in self.agents:
            a.stop(grace=10)

    def stop_all(self) -> None:
        self.group.stop()

    def leftovers(self) -> list[int]:
        return self.group.leftovers()

    def orchestrator_tail(self) -> str:
        return self.orchestrator.tail(40) if self.orchestrator else "(no log)"


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """A SIGTERM to the bench unwinds like Ctrl-C, so everything it started is stopped."""
    def raise_interrupt(sig: int, _frame: object) -> None:
        sys.stderr.write(f"control-plane bench: signal {sig}: stopping\n")
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, raise_interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)

