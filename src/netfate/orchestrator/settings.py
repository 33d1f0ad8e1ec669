"""Orchestrator settings: from the command line or NETFATE_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(f"NETFATE_{name}", default)


@dataclass
class Settings:
    state_dir: Path = field(default_factory=lambda: Path(_env("STATE_DIR", "/var/lib/netfate")))
    db_url: str | None = field(default_factory=lambda: os.environ.get("NETFATE_DB_URL"))
    nats_url: str | None = field(default_factory=lambda: os.environ.get("NETFATE_NATS_URL"))
    host: str = field(default_factory=lambda: _env("HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: int(_env("PORT", "8181")))
    command_timeout: float = field(
        default_factory=lambda: float(_env("COMMAND_TIMEOUT", "15"))
    )
    reconcile_interval: float = field(
        default_factory=lambda: float(_env("RECONCILE_INTERVAL", "5"))
    )
    node_timeout: float = field(default_factory=lambda: float(_env("NODE_TIMEOUT", "10")))
    policy: str = field(default_factory=lambda: _env("POLICY", "netfate"))
    # Seconds without a packet from or to a user before the controller reports them idle
    # (the NetFATE paper's "no packets for a certain time period"); 0 turns it off.
    user_idle_timeout: int = field(default_factory=lambda: int(_env("USER_IDLE_TIMEOUT", "60")))
    # Fast re-authentication: a client whose session is younger than this may associate at
    # another node without logging in again (RADIUS by MAC and session); 0 turns it off.
    reauth_lifetime: float = field(default_factory=lambda: float(_env("REAUTH_LIFETIME",
                                                                      "3600")))
    radius: bool = field(default_factory=lambda: _env("RADIUS", "0") == "1")
    max_body_bytes: int = 16 * 1024 * 1024
    seed_catalogue: bool = True

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.state_dir / 'nfvi.db'}"

    @property
    def public_url(self) -> str:
        return f"http://{self.host}:{self.port}"
