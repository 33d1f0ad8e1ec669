"""A private PostgreSQL server on loopback, from Debian's ``postgresql`` package: for
`netfate cluster up` (orchestrator replicas share it, issue #15) and the tests. Its data
directory is a ``fate-pg-*`` temp dir (removed at stop); it runs as the ``postgres`` OS user
(PostgreSQL refuses root), trust authentication on 127.0.0.1 only, durability off (fsync,
synchronous commit: a test bed, not an operator's database). Started and stopped by the PID
it records, never by name.

    pg = LocalPostgres.start()
    url = pg.create_database("netfate")   # postgresql+psycopg://postgres@127.0.0.1:P/netfate
    pg.stop()

Errors: DriverError when PostgreSQL is not installed, we are not root, or it does not
start within START_TIMEOUT_S (with the end of its log)."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from netfate.errors import DriverError, InvalidInput
from netfate.ports import free_port

PG_USER = "postgres"
START_TIMEOUT_S = 30.0
DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}", re.ASCII)


def bindir() -> Path | None:
    """The newest installed server's bin directory, e.g. /usr/lib/postgresql/15/bin."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found.sort(key=lambda b: int(b.parent.name) if b.parent.name.isdigit() else 0)
    return found[-1] if found else None


@dataclass
class LocalPostgres:
    bindir: Path
    datadir: Path
    port: int
    proc: subprocess.Popen[bytes]
    startup_s: float

    @property
    def pid(self) -> int:
        return self.proc.pid

    def admin_dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={PG_USER} dbname={dbname}"

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{dbname}"

    @classmethod
    def start(cls, prefix: str = "fate-pg-") -> LocalPostgres:
        if os.geteuid() != 0:
            raise DriverError("a private PostgreSQL needs root: it runs as the 'postgres' "
                              "OS user")
        bd = bindir()
        if bd is None:
            raise DriverError("PostgreSQL is not installed (/usr/lib/postgresql/*/bin/"
                              "initdb): apt-get install postgresql")
        t0 = time.monotonic()
        datadir = Path(tempfile.mkdtemp(prefix=prefix))
        proc: subprocess.Popen[bytes] | None = None
        try:
            shutil.chown(datadir, PG_USER, PG_USER)
            datadir.chmod(0o700)
            subprocess.run(  # noqa: S603 - argument list, never a shell
                ["runuser", "-u", PG_USER, "--", str(bd / "initdb"), "-D", str(datadir),
                 "-U", PG_USER, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
                check=True, capture_output=True, cwd="/", timeout=120)
            port = free_port()
            # Started directly as the postgres user (not through runuser), so the PID we
            # record is the postmaster's own.
            with open(datadir / "server.log", "wb") as log:
                proc = subprocess.Popen(  # noqa: S603 - argument list, never a shell
                    [str(bd / "postgres"), "-D", str(datadir), "-k", str(datadir),
                     "-p", str(port), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                     "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                     "-c", "max_connections=200"],
                    user=PG_USER, group=PG_USER, cwd="/", stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True)
            pg = cls(bd, datadir, port, proc, 0.0)
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                if proc.poll() is not None:
                    raise DriverError("postgres exited at start:\n" + pg.log_tail())
                try:
                    psycopg.connect(pg.admin_dsn(), connect_timeout=2).close()
                    break
                except psycopg.OperationalError as exc:
                    if time.monotonic() > deadline:
                        raise DriverError(f"postgres did not answer in {START_TIMEOUT_S:.0f}"
                                          f" s ({exc}):\n{pg.log_tail()}") from exc
                    time.sleep(0.05)
            pg.startup_s = time.monotonic() - t0
            return pg
        except BaseException:
            if proc is not None:
                _end(proc)
            shutil.rmtree(datadir, ignore_errors=True)
            raise

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            text = (self.datadir / "server.log").read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    def create_database(self, name: str) -> str:
        """Create database ``name`` (InvalidInput unless a plain lower-case identifier);
        its SQLAlchemy URL."""
        if not DB_NAME.fullmatch(name):
            raise InvalidInput(f"database name must be 1-63 of a-z, 0-9, '_': {name[:70]!r}")
        with psycopg.connect(self.admin_dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")  # a checked identifier, not user text
        return self.url(name)

    def drop_database(self, name: str) -> None:
        if not DB_NAME.fullmatch(name):
            raise InvalidInput(f"database name must be 1-63 of a-z, 0-9, '_': {name[:70]!r}")
        with psycopg.connect(self.admin_dsn(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        """Stop it by its PID and remove its data directory."""
        _end(self.proc)
        shutil.rmtree(self.datadir, ignore_errors=True)


def _end(proc: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGINT), then immediate (SIGQUIT), then SIGKILL: by PID, our own."""
    for sig, wait_s in ((signal.SIGINT, 15.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait_s)
