"""runc, the OCI runtime, as the container flavour uses it: a state root of the project's own
(``<run dir>/runc``), container ids with the project's prefix, argument lists only.

runc 1.1 on this machine's hybrid cgroups puts limits through cgroup v1; `runc pause` freezes
the container's freezer cgroup. Errors are DriverError with runc's own message.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from netfate import naming
from netfate.drivers import nf_files
from netfate.errors import DriverError

RUNC = "runc"
TIMEOUT = 30.0  # s, for runc's own commands (a script's exec has the script's timeout)


def container_id(instance_id: str) -> str:
    """The runc container id of an NF instance: the project's prefix plus the id."""
    return naming.PREFIX + instance_id


class Runc:
    """runc with its state under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _argv(self, *args: str) -> list[str]:
        return [RUNC, "--root", str(self.root), *args]

    def _run(self, *args: str, ok_if: tuple[str, ...] = ()) -> str:
        try:
            cp = subprocess.run(self._argv(*args), capture_output=True, text=True,  # noqa: S603
                                timeout=TIMEOUT, check=False, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise DriverError(f"runc {args[0]} timed out after {TIMEOUT}s") from None
        if cp.returncode != 0:
            err = cp.stderr.strip()
            if any(s in err for s in ok_if):
                return ""
            raise DriverError(f"runc {' '.join(args[:2])} failed: {err[-800:]}")
        return cp.stdout

    def run(self, cid: str, bundle: Path, log: Path) -> None:
        """Create and start the container detached. Its stdio (and runc's errors) go to
        `log`, a file: a pipe would be held open by the container's process."""
        self._spawn("run", cid, bundle, log, "--detach")

    def create(self, cid: str, bundle: Path, log: Path) -> None:
        """Create the container (its process waits in `runc init` for `start`); stdio to
        `log` as for `run`."""
        self._spawn("create", cid, bundle, log)

    def start(self, cid: str) -> None:
        """Start a created container: its process execs the spec's program."""
        self._run("start", cid)

    def _spawn(self, verb: str, cid: str, bundle: Path, log: Path, *flags: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # The log is in the NF's run/: opened and read back without following a link.
        base, rel = log.parent.parent, f"{log.parent.name}/{log.name}"
        try:
            fd = nf_files.append(base, rel)
        except OSError as exc:
            raise DriverError(f"runc run {cid}: its log {log}: {exc}") from None
        with os.fdopen(fd, "ab") as out:
            try:
                cp = subprocess.run(  # noqa: S603 - fixed argv
                    self._argv(verb, *flags, "--bundle", str(bundle), cid),
                    stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=TIMEOUT,
                    check=False)
            except subprocess.TimeoutExpired:
                raise DriverError(f"runc {verb} {cid} timed out after {TIMEOUT}s") from None
        if cp.returncode != 0:
            try:
                data = nf_files.read(base, rel, limit=800, tail=True) or b""
            except OSError as exc:
                data = str(exc).encode()
            tail = data.decode(errors="replace").strip()
            raise DriverError(f"runc {verb} {cid} failed: {tail}")

    def exec_argv(self, cid: str, argv: list[str], env: dict[str, str], cwd: str) -> list[str]:
        """The argv running `argv` inside the container (runc exec), with exactly `env`."""
        flags: list[str] = ["--cwd", cwd]
        for k, v in sorted(env.items()):
            flags += ["--env", f"{k}={v}"]
        return self._argv("exec", *flags, cid, *argv)

    def state(self, cid: str) -> dict[str, Any] | None:
        """runc's state of the container (status: created, running, paused, stopped); None
        if runc knows no such container."""
        out = self._run("state", cid, ok_if=("does not exist", "not exist"))
        if not out:
            return None
        try:
            doc = json.loads(out)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    def init_pid(self, cid: str) -> tuple[int, int] | None:
        """(PID, start time in clock ticks) of the container's own process, from runc's state
        file without running runc (cheap enough to poll); None if there is none."""
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            doc = json.loads((self.root / cid / "state.json").read_text())
            return int(doc["init_process_pid"]), int(doc["init_process_start"])
        return None

    def pause(self, cid: str) -> None:
        self._run("pause", cid, ok_if=("already paused", "is paused"))

    def resume(self, cid: str) -> None:
        self._run("resume", cid, ok_if=("not paused", "is running"))

    def delete(self, cid: str) -> None:
        """Kill and remove the container; a no-op if it does not exist."""
        self._run("delete", "--force", cid, ok_if=("does not exist", "not exist"))

    def list_ids(self) -> list[str]:
        """The ids of every container under this root."""
        if not self.root.is_dir():
            return []
        return sorted(d.name for d in self.root.iterdir() if d.is_dir())
