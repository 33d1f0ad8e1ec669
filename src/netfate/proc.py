"""Running commands: always an argument list, optionally inside a network namespace."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence

from netfate.errors import DriverError

NETNS_DIR = "/run/netns"


def netns_argv(netns: str | None, argv: Sequence[str]) -> list[str]:
    """Prefix argv with nsenter so it runs in the named namespace (no shell involved)."""
    if netns is None:
        return list(argv)
    return ["nsenter", f"--net={NETNS_DIR}/{netns}", "--", *argv]


def run(
    argv: Sequence[str],
    *,
    netns: str | None = None,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    timeout: float = 30.0,
    check: bool = True,
    cwd: str | None = None,
    preexec: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    full = netns_argv(netns, argv)
    merged = None if env is None else {**os.environ, **env}
    try:
        cp = subprocess.run(  # noqa: S603 - argument list, never a shell
            full,
            input=input,
            capture_output=True,
            env=merged,
            timeout=timeout,
            cwd=cwd,
            preexec_fn=preexec,
            check=False,
        )
    except FileNotFoundError as exc:
        raise DriverError(f"command not found: {full[0]} (is it installed?)") from exc
    except subprocess.TimeoutExpired as exc:
        raise DriverError(f"{' '.join(argv)} timed out after {timeout}s") from exc
    if check and cp.returncode != 0:
        err = cp.stderr.decode(errors="replace").strip() or cp.stdout.decode(errors="replace")
        raise DriverError(f"{' '.join(argv)} failed (exit {cp.returncode}): {err.strip()}")
    return cp


def alive(pid: int) -> bool:
    """True unless the process is gone or a zombie (detached daemons are reaped by init)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def end_pid(pid: int, sig: int = signal.SIGTERM, timeout: float = 3.0) -> None:
    """Signal a process we started, wait for it to go, then SIGKILL it if it has not."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        # Until it is gone it still holds what it had open (a daemon's sockets, the
        # userspace datapath's tap): a successor started now would find them busy.
        deadline = time.monotonic() + 2.0
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
