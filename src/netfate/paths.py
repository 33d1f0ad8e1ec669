"""Where the project keeps its runtime state. One root, so `testbed down` can remove it.

The root is the ``paths.run_dir`` setting (NETFATE_RUN_DIR): each entry point calls
`configure` once with it after building the settings; until then it is /run/netfate. This
module reads no environment.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_RUN_DIR = Path("/run/netfate")
_run_dir = DEFAULT_RUN_DIR


def configure(run_dir: Path) -> None:
    """Set the root for this process (entry points only, once, from the settings)."""
    global _run_dir
    _run_dir = Path(run_dir)


def run_dir() -> Path:
    return _run_dir


def ovs_dir() -> Path:
    return run_dir() / "ovs"


def bundles_dir() -> Path:
    return run_dir() / "bundles"


def node_dir(node: str) -> Path:
    return run_dir() / "nodes" / node
