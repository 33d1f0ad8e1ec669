"""The scale-out control plane on one machine (issue #15), for tests, the bench and a look at
how its parts fit: PostgreSQL (a private server, or the operator's ``--db``), a NATS cluster
(or one nats-server), SDN controllers with OpenFlow roles, and orchestrator replicas that
share the database and the bus, each serving the API on its own port with one operator
token. Every process is supervised by the PID it records; `stop` ends them all, in order,
and removes the run directory (``fate-cluster-*``).

    c = Cluster(replicas=3, nats=3, controllers=2)
    c.start()          # returns once every replica's API answers
    c.endpoints()      # {"api": [...], "nats": "...", "db": "...", "controllers": [...]}
    c.kill_replica(0)  # SIGKILL (fault tests)
    c.stop()

Errors: DriverError (StartError) naming the part that did not start; nothing is left
running then."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from netfate.bus.cluster import NatsCluster
from netfate.bus.server import EmbeddedNats
from netfate.db.pg_server import LocalPostgres
from netfate.errors import DriverError, InvalidInput
from netfate.ports import free_port
from netfate.supervisor import Supervised, probes

MAX_REPLICAS = 9
MAX_CONTROLLERS = 9
HEALTH_TIMEOUT_S = 60.0


def _netfate(*args: str) -> list[str]:
    return [sys.executable, "-m", "netfate.cli.main", *args]


class Cluster:
    def __init__(self, replicas: int = 3, nats: int = 1, controllers: int = 1,
                 db_url: str | None = None, env: dict[str, str] | None = None) -> None:
        if not 1 <= replicas <= MAX_REPLICAS:
            raise InvalidInput(f"replicas must be 1-{MAX_REPLICAS}: {replicas}")
        if not 1 <= nats <= 9:
            raise InvalidInput(f"nats must be 1-9 (1: one nats-server): {nats}")
        if not 0 <= controllers <= MAX_CONTROLLERS:
            raise InvalidInput(f"controllers must be 0-{MAX_CONTROLLERS}: {controllers}")
        if db_url is not None and not db_url.startswith("postgresql"):
            raise InvalidInput("db must be a PostgreSQL URL (postgresql+psycopg://...): "
                               "replicas share it")
        self.n_replicas, self.n_nats, self.n_controllers = replicas, nats, controllers
        self.db_url = db_url
        self.extra_env = dict(env or {})
        self.rundir = Path(tempfile.mkdtemp(prefix="fate-cluster-"))
        self.token = secrets.token_urlsafe(32)
        self.pg: LocalPostgres | None = None
        self.bus: NatsCluster | EmbeddedNats | None = None
        self.replicas: list[Supervised] = []
        self.api_ports: list[int] = []
        self.controllers: list[Supervised] = []
        self.of_ports: list[int] = []

    # -- start/stop -----------------------------------------------------------------------
    def start(self, say: Any = None) -> None:
        tell = say or (lambda _msg: None)
        try:
            if self.db_url is None:
                tell("PostgreSQL")
                self.pg = LocalPostgres.start(prefix="fate-pg-")
                self.db_url = self.pg.create_database("netfate")
            tell(f"NATS ({self.n_nats})")
            if self.n_nats == 1:
                self.bus = EmbeddedNats(self.rundir / "nats")
            else:
                self.bus = NatsCluster(self.rundir / "nats", size=self.n_nats)
            self.bus.start()
            for k in range(self.n_controllers):
                tell(f"controller c{k + 1}")
                self._start_controller(k)
            for k in range(self.n_replicas):
                tell(f"orchestrator replica r{k + 1}")
                self._start_replica(k)
            for k in range(self.n_replicas):
                self._wait_api(k)
        except BaseException:
            self.stop()
            raise

    @property
    def nats_url(self) -> str:
        if isinstance(self.bus, NatsCluster):
            return self.bus.client_urls
        assert self.bus is not None
        return self.bus.url

    def env(self) -> dict[str, str]:
        """The environment of every replica: one operator token for all."""
        keep = {k: v for k, v in os.environ.items()
                if not k.startswith("NETFATE_") or k == "NETFATE_RUN_DIR"}
        return {**keep, "NETFATE_API_TOKEN": self.token, **self.extra_env}

    def _start_controller(self, k: int) -> None:
        port = free_port()
        p = Supervised(f"controller-c{k + 1}", _netfate(
            "controller", "--nats-url", self.nats_url, "--port", str(port),
            "--controller-id", f"c{k + 1}"), self.rundir, programs=("netfate", "python"),
            env=self.env())
        p.start(probes.tcp_port(port), timeout=30.0)
        self.controllers.append(p)
        self.of_ports.append(port)

    def replica_argv(self, k: int, port: int) -> list[str]:
        assert self.db_url is not None
        state = self.rundir / f"r{k + 1}"
        state.mkdir(exist_ok=True)
        return _netfate("orchestrator", "--replica-id", f"r{k + 1}", "--port", str(port),
                        "--state-dir", str(state), "--db-url", self.db_url,
                        "--nats-url", self.nats_url)

    def _start_replica(self, k: int) -> None:
        port = self.api_ports[k] if k < len(self.api_ports) else free_port()
        p = Supervised(f"orchestrator-r{k + 1}", self.replica_argv(k, port), self.rundir,
                       programs=("netfate", "python"), env=self.env())
        p.start(None, timeout=5.0)
        if k < len(self.replicas):
            self.replicas[k] = p
        else:
            self.replicas.append(p)
            self.api_ports.append(port)

    def _wait_api(self, k: int, timeout: float = HEALTH_TIMEOUT_S) -> None:
        url = f"{self.api(k)}/api/v1/health"
        deadline = time.monotonic() + timeout
        while True:
            p = self.replicas[k]
            if not p.running():
                raise DriverError(f"orchestrator replica r{k + 1} exited at start:\n"
                                  f"{p.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise DriverError(f"orchestrator replica r{k + 1}'s API did not answer in "
                                  f"{timeout:.0f} s:\n{p.tail()}")
            time.sleep(0.2)

    def stop(self) -> None:
        """End everything this cluster started (replicas, controllers, NATS, PostgreSQL),
        by PID, and remove its run directory."""
        for p in [*self.replicas, *self.controllers]:
            with contextlib.suppress(Exception):
                p.stop()
        if self.bus is not None:
            with contextlib.suppress(Exception):
                self.bus.stop()
        if self.pg is not None:
            with contextlib.suppress(Exception):
                self.pg.stop()
        shutil.rmtree(self.rundir, ignore_errors=True)

    # -- views and faults -----------------------------------------------------------------
    def api(self, k: int) -> str:
        return f"http://127.0.0.1:{self.api_ports[k]}"

    def endpoints(self) -> dict[str, Any]:
        return {"api": [self.api(k) for k in range(len(self.replicas))],
                "replicas": [f"r{k + 1}" for k in range(len(self.replicas))],
                "nats": self.nats_url, "db": self.db_url,
                "controllers": [f"tcp:127.0.0.1:{p}" for p in self.of_ports],
                "api_token": self.token, "rundir": str(self.rundir)}

    def replica_pid(self, k: int) -> int | None:
        return self.replicas[k].pid

    def kill_replica(self, k: int) -> int | None:
        """SIGKILL replica k (its PID, as recorded); the PID killed."""
        pid = self.replicas[k].pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pid

    def restart_replica(self, k: int) -> None:
        with contextlib.suppress(Exception):
            self.replicas[k].stop()
        self._start_replica(k)
        self._wait_api(k)
