"""Blocking clients for QEMU's two JSON channels over unix sockets: QMP (the monitor:
stop/cont, migrate, query-status; qemu docs "QEMU Machine Protocol") and the guest agent
(qemu-guest-agent over virtio-serial: guest-exec, guest-file-*; qemu docs "QEMU Guest Agent
Protocol Reference").

Why not the `qemu.qmp` library: it is asyncio-only (its sync wrapper is marked legacy) and it
speaks QMP, not the guest agent's dialect (no greeting, no capabilities negotiation, and the
guest-sync-delimited resynchronisation after a reconnect). The driver is synchronous, and
the two dialects share ~all of this small module.
"""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import time
from pathlib import Path
from typing import Any

from netfate.errors import DriverError

SUN_PATH_MAX = 107  # bytes of a unix socket's path (sockaddr_un.sun_path, NUL excluded)


def unix_connect(sock: socket.socket, path: Path) -> None:
    """Connect ``sock`` to the unix socket at ``path``, however long the path: past
    SUN_PATH_MAX, through /proc/self/fd/N/<name> with N an O_PATH descriptor of its
    directory (the kernel resolves the link). OSError as socket.connect raises it."""
    if len(os.fsencode(str(path))) <= SUN_PATH_MAX:
        sock.connect(str(path))
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        sock.connect(f"/proc/self/fd/{fd}/{path.name}")
    finally:
        os.close(fd)


class _JsonChannel:
    """One JSON object per line over a unix stream socket."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buf = b""

    def _connect(self, wait: float) -> socket.socket:
        deadline = time.monotonic() + wait
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(self.timeout)
            try:
                unix_connect(s, self.path)
                self.sock = s
                self.buf = b""
                return s
            except OSError as exc:
                s.close()
                if time.monotonic() >= deadline:
                    raise DriverError(f"can't connect to {self.path}: {exc}") from None
                time.sleep(0.05)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _send(self, obj: dict[str, Any]) -> None:
        assert self.sock is not None
        try:
            self.sock.sendall(json.dumps(obj).encode() + b"\n")
        except OSError as exc:
            self.close()
            raise DriverError(f"{self.path}: send failed: {exc}") from None

    def _line(self, deadline: float) -> bytes:
        assert self.sock is not None
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise DriverError(f"{self.path}: no answer in time")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except OSError as exc:
                self.close()
                raise DriverError(f"{self.path}: receive failed: {exc}") from None
            if not chunk:
                self.close()
                raise DriverError(f"{self.path}: connection closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def _reply(self, deadline: float) -> Any:
        """The next reply (events are skipped). DriverError on a QEMU error reply."""
        while True:
            line = self._line(deadline).strip().lstrip(b"\xff")
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "event" in msg:
                continue
            if "error" in msg:
                err = msg["error"]
                raise DriverError(f"{self.path.name}: {err.get('class')}: {err.get('desc')}")
            if "return" in msg:
                return msg["return"]


class Qmp(_JsonChannel):
    """The QEMU monitor. `execute` connects on first use (waiting up to `connect_wait` s)."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        super().__init__(path, timeout)

    def connect(self, wait: float = 5.0) -> None:
        self._connect(wait)
        deadline = time.monotonic() + self.timeout
        while True:
            # An event QEMU queued for the previous client (e.g. RESUME when an incoming
            # migration ends) can come before the greeting: skipped, as _reply skips them.
            line = self._line(deadline).strip()
            try:
                greeting = json.loads(line) if line else {}
            except ValueError:
                greeting = None
            if isinstance(greeting, dict) and "QMP" in greeting:
                break
            if not (isinstance(greeting, dict) and ("event" in greeting or not line)):
                self.close()
                raise DriverError(f"{self.path}: not a QMP greeting: {line[:200]!r}")
        self._send({"execute": "qmp_capabilities"})
        self._reply(deadline)

    def execute(self, cmd: str, args: dict[str, Any] | None = None,
                timeout: float | None = None) -> Any:
        if self.sock is None:
            self.connect()
        msg: dict[str, Any] = {"execute": cmd}
        if args:
            msg["arguments"] = args
        self._send(msg)
        return self._reply(time.monotonic() + (timeout or self.timeout))

    def getfd(self, name: str, fd: int) -> None:
        """Hand QEMU the open descriptor ``fd`` under ``name`` (QMP ``getfd``: it travels as
        SCM_RIGHTS with the command), e.g. for ``migrate`` to ``fd:NAME``."""
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        msg = json.dumps({"execute": "getfd", "arguments": {"fdname": name}}).encode()
        try:
            socket.send_fds(self.sock, [msg + b"\n"], [fd])
        except OSError as exc:
            self.close()
            raise DriverError(f"{self.path}: send failed: {exc}") from None
        self._reply(time.monotonic() + self.timeout)

    def migration_end(self, timeout: float, poll_s: float) -> dict[str, Any] | None:
        """Poll ``query-migrate`` every ``poll_s`` s until this QEMU's outgoing migration
        has ended: QEMU's last answer (its "status" "completed", "failed" or "cancelled";
        on completion its figures: "total-time", "downtime", "ram", ...), or None if it had
        not ended ``timeout`` s from now (it still runs: the caller cancels it).
        DriverError if QMP fails."""
        deadline = time.monotonic() + timeout
        while True:
            st: dict[str, Any] = self.execute("query-migrate")
            if st.get("status") in ("completed", "failed", "cancelled"):
                return st
            if time.monotonic() > deadline:
                return None
            time.sleep(poll_s)


class GuestAgent(_JsonChannel):
    """qemu-guest-agent in the VM, through its virtio-serial port's host socket."""

    def sync(self, wait: float) -> None:
        """(Re)connect and resynchronise (guest-sync-delimited): stale replies from a
        previous session are dropped. DriverError if the agent does not answer by `wait` s."""
        deadline = time.monotonic() + wait
        while True:
            self.close()
            try:
                self._connect(max(0.1, deadline - time.monotonic()))
                token = random.randint(1, 2**31)
                self._send({"execute": "guest-sync-delimited", "arguments": {"id": token}})
                step = min(deadline, time.monotonic() + 1.0)
                while self._reply(step) != token:
                    pass
                return
            except DriverError:
                if time.monotonic() >= deadline:
                    raise DriverError(f"guest agent at {self.path} does not answer") from None
                time.sleep(0.1)

    def execute(self, cmd: str, args: dict[str, Any] | None = None,
                timeout: float | None = None) -> Any:
        if self.sock is None:
            self.sync(self.timeout)
        msg: dict[str, Any] = {"execute": cmd}
        if args:
            msg["arguments"] = args
        self._send(msg)
        return self._reply(time.monotonic() + (timeout or self.timeout))

    def run(self, argv: list[str], env: dict[str, str], timeout: float) -> tuple[int, str, str]:
        """Run `argv` in the guest (guest-exec), wait for it; (exit code, stdout, stderr).
        DriverError if it runs longer than `timeout` s."""
        pid = self.execute("guest-exec", {
            "path": argv[0], "arg": argv[1:], "env": [f"{k}={v}" for k, v in env.items()],
            "capture-output": True})["pid"]
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            st = self.execute("guest-exec-status", {"pid": pid})
            if st.get("exited"):
                break
            if time.monotonic() >= deadline:
                raise DriverError(f"{argv[-1]} timed out after {timeout}s in the guest")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        out = base64.b64decode(st.get("out-data", "")).decode(errors="replace")
        err = base64.b64decode(st.get("err-data", "")).decode(errors="replace")
        code = st.get("exitcode")
        return (code if isinstance(code, int) else 128 + int(st.get("signal", 0))), out, err

    def write_file(self, path: str, data: bytes) -> None:
        h = self.execute("guest-file-open", {"path": path, "mode": "w"})
        try:
            for i in range(0, len(data), 48 * 1024):
                self.execute("guest-file-write", {
                    "handle": h, "buf-b64": base64.b64encode(data[i:i + 48 * 1024]).decode()})
        finally:
            self.execute("guest-file-close", {"handle": h})

    def read_file(self, path: str) -> bytes:
        h = self.execute("guest-file-open", {"path": path, "mode": "r"})
        out = b""
        try:
            while True:
                r = self.execute("guest-file-read", {"handle": h, "count": 48 * 1024})
                out += base64.b64decode(r.get("buf-b64", ""))
                if r.get("eof") or not r.get("count"):
                    return out
        finally:
            self.execute("guest-file-close", {"handle": h})
