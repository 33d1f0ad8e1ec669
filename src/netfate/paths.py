"""Where the project keeps its runtime state. One root, so `testbed down` can remove it."""

from __future__ import annotations

import os
from pathlib import Path


def run_dir() -> Path:
    return Path(os.environ.get("NETFATE_RUN_DIR", "/run/netfate"))


def ovs_dir() -> Path:
    return run_dir() / "ovs"


def bundles_dir() -> Path:
    return run_dir() / "bundles"


def node_dir(node: str) -> Path:
    return run_dir() / "nodes" / node
