"""The control-plane bench's parameters, targets and constants."""

from __future__ import annotations

import math
from dataclasses import dataclass

from netfate.errors import NetfateError

TARGETS = {"nodes": 1000, "users": 10000, "p99_ms": 100, "events_per_s": 500}
PEERS = {
    "note": "published ceilings of the peer platforms, for contrast",
    "netfate_paper": "a testbed of a few CPEs, one user's firewall",
    "gnf_glasgow": "~100 NFs (containers) across the edge devices of the testbed",
    "nnf_native_nfs": "~100 native NFs per CPE-class node",
    "nfs_ceiling": 100,
}
PASSWORD = "bench-password"  # the simulated users' password
DONE_STATES = {"COMPLETED", "FAILED", "FAILED_TEMP", "ROLLED_BACK"}


class BenchError(NetfateError):
    """The benchmark could not set up or run."""


@dataclass
class Params:
    nodes: int = 1000
    users: int = 10000
    rate: float = 500.0          # user events per second (open loop)
    duration: float = 60.0       # seconds of roaming after the logins
    telemetry_interval: float = 2.0
    idle_fraction: float = 0.1
    agent_procs: int = 1
    agents_per_conn: int = 50
    users_via: str = "api"
    warm: bool = False
    idle_window: float = 5.0
    op_timeout: float = 30.0
    apply_delay_ms: float = 0.0
    seed: int = 1
    http_conns: int = 64
    profile: str | None = None
    db_url: str | None = None         # None: SQLite in the bench's temp dir
    max_in_flight: int | None = None  # the orchestrator's max_events_in_flight (None: its own)
    nats: int = 1                     # NATS servers: 1 the orchestrator's own; more a cluster
    kill_nats_at: float | None = None  # s into the roaming phase: kill -9 a NATS member
    replicas: int = 1                 # orchestrator replicas (2-9 share PostgreSQL, #15)
    kill_replica_at: float | None = None  # s into the roaming phase: kill -9 the leader

    def check(self) -> None:
        """BenchError for parameters the bench cannot run with (naming them). Every figure
        is checked finite first: NaN fails no comparison (NaN <= 0 is false)."""
        figures = {"--rate": self.rate, "--duration": self.duration,
                   "--telemetry-interval": self.telemetry_interval,
                   "--idle-fraction": self.idle_fraction, "--op-timeout": self.op_timeout,
                   "--apply-delay-ms": self.apply_delay_ms, "idle_window": self.idle_window,
                   "--kill-nats-at": 0.0 if self.kill_nats_at is None else self.kill_nats_at,
                   "--kill-replica-at":
                       0.0 if self.kill_replica_at is None else self.kill_replica_at}
        bad = [k for k, v in figures.items() if not math.isfinite(v)]
        if bad:
            raise BenchError(f"{', '.join(bad)}: must be a finite number")
        if self.telemetry_interval <= 0 or self.op_timeout <= 0 or self.idle_window <= 0:
            raise BenchError("need --telemetry-interval > 0 and --op-timeout > 0")
        if not 0 <= self.idle_fraction <= 1 or self.apply_delay_ms < 0:
            raise BenchError("need --idle-fraction in 0-1 and --apply-delay-ms >= 0")
        if self.nodes < 2 or self.users < 1 or self.rate <= 0 or self.duration < 0:
            raise BenchError("need --nodes >= 2, --users >= 1, --rate > 0, --duration >= 0")
        if self.users_via not in ("api", "db"):
            raise BenchError("--users-via is api or db")
        if self.warm and self.users_via != "db":
            raise BenchError("--warm needs --users-via db")
        if not 1 <= self.nats <= 9:
            raise BenchError("--nats is 1-9 (the members of a NATS cluster)")
        if self.kill_nats_at is not None and (self.nats < 2 or self.kill_nats_at < 0
                                              or self.kill_nats_at > self.duration):
            raise BenchError("--kill-nats-at needs --nats >= 2 and a second within "
                             "--duration")
        if not 1 <= self.replicas <= 9:
            raise BenchError("--replicas is 1-9")
        if self.replicas > 1 and self.profile:
            raise BenchError("--replicas > 1 runs without --profile (one process is "
                             "profiled)")
        if self.kill_replica_at is not None and (
                self.replicas < 2 or not 0 <= self.kill_replica_at <= self.duration):
            raise BenchError("--kill-replica-at needs --replicas >= 2 and a second within "
                             "--duration")
        if self.kill_replica_at is not None and self.kill_nats_at is not None:
            raise BenchError("--kill-replica-at and --kill-nats-at: one fault per run")


def hash_name(name: str) -> int:
    """User u123's number, 123."""
    return int(name.lstrip("u") or 0)


def mac_of(name: str) -> str:
    """The simulated user's device MAC: locally administered, from the user's number."""
    n = hash_name(name)
    return ":".join(["02", "fa"] + [f"{(n >> k) & 255:02x}" for k in (24, 16, 8, 0)])
