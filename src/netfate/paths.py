"""Where the project keeps its runtime state. One root, so `testbed down` can remove it.

The root is the ``paths.run_dir`` setting (NETFATE_RUN_DIR): each entry point calls
`configure` once with it after building the settings; until then it is /run/netfate. This
module reads no environment.
"""

from __future__ import annotations

from pathlib import Path

from netfate.errors import InvalidInput

DEFAULT_RUN_DIR = Path("/run/netfate")
# In a run dir NetFATE made: `testbed down` removes only a run dir that carries it (or the
# default one), since NETFATE_RUN_DIR may name any directory (a probe's /tmp/x lost its files).
MARKER = ".netfate-run-dir"
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


def claim() -> Path:
    """Make the run dir, or take an empty one, and mark it NetFATE's (MARKER); the run dir.
    InvalidInput, changing nothing, if it is not a directory or holds files and no marker
    (someone else's directory, which `testbed down` would otherwise remove)."""
    d = run_dir()
    try:
        if d.is_dir() and not ours(d) and any(d.iterdir()):
            raise InvalidInput(
                f"run dir {d} (NETFATE_RUN_DIR) holds files and no {MARKER}: it is not one "
                "NetFATE made, and `netfate testbed down` removes its run dir with all it "
                "holds; give a new or empty directory")
        d.mkdir(parents=True, exist_ok=True)
        (d / MARKER).write_text("NetFATE's run dir: `netfate testbed down` removes it.\n")
    except OSError as exc:
        raise InvalidInput(f"run dir {d} (NETFATE_RUN_DIR): {exc.strerror or exc}") from None
    return d


def ours(d: Path) -> bool:
    """Whether directory `d` is a run dir NetFATE made (the default one, or marked)."""
    return d == DEFAULT_RUN_DIR or (d / MARKER).is_file()
