"""The NFVI database against a real PostgreSQL server: a private one on loopback, started for
this module from Debian's `postgresql` package and stopped by PID afterwards.

The backend-neutral tests of tests/unit/test_db.py run here unchanged: importing them into
this module makes pytest collect them again, with ``db_url`` below pointing at a fresh
PostgreSQL database for each test.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from netfate.db import Database, migrate, repo
from netfate.db.migrate import current_revision, head_revision
from netfate.errors import Conflict
from tests.unit import test_db as unit
from tests.unit.test_db import (  # noqa: F401 - collected here again, against PostgreSQL
    test_as_dict_is_json_able,
    test_bundles,
    test_constraint_violations_map_to_errors_and_session_survives,
    test_delete_node_refused_while_instances_remain,
    test_desired_state_for_node,
    test_instance_errors_name_what_is_wrong,
    test_instances,
    test_migrate_from_empty_to_head_and_back,
    test_models_and_migrations_agree,
    test_nodes,
    test_notifications_and_mutes,
    test_nul_bytes_are_invalid_or_not_found,
    test_old_cost_parameters_still_verify_and_are_upgraded,
    test_op_occ_state_transitions_with_timestamps,
    test_session_commits_or_rolls_back,
    test_sessions_follow_the_user,
    test_steering,
    test_subscriptions,
    test_switching_records_and_actual_states,
    test_users_and_authentication,
)

pytestmark = pytest.mark.root

# The unit tests' fixtures, under their own names so pytest finds them in this module.
db = unit.db
s = unit.s
world = unit.world

PG_USER = "postgres"
START_TIMEOUT_S = 30.0


@dataclass
class PgServer:
    bindir: Path
    datadir: Path
    port: int
    pid: int
    startup_s: float

    def admin_dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={PG_USER} dbname={dbname}"

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{dbname}"


def _pg_bindir() -> Path | None:
    """The newest installed server's bin directory, e.g. /usr/lib/postgresql/15/bin."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found.sort(key=lambda b: int(b.parent.name) if b.parent.name.isdigit() else 0)
    return found[-1] if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGINT), then immediate (SIGQUIT), then SIGKILL: by PID, our own."""
    for sig, wait_s in ((signal.SIGINT, 15.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait_s)


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PgServer]:
    if os.geteuid() != 0:
        pytest.skip("needs root: PostgreSQL runs as the 'postgres' OS user via runuser")
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb): "
                    "apt-get install postgresql")
    t0 = time.monotonic()
    datadir = Path(tempfile.mkdtemp(prefix="fate-pg-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        shutil.chown(datadir, PG_USER, PG_USER)
        datadir.chmod(0o700)
        subprocess.run(
            ["runuser", "-u", PG_USER, "--", str(bindir / "initdb"), "-D", str(datadir),
             "-U", PG_USER, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
            check=True, capture_output=True, cwd="/",
        )
        port = _free_port()
        # Started directly as the postgres user (not through runuser), so the PID we record
        # is the postmaster's own.
        with open(datadir / "server.log", "wb") as log:
            proc = subprocess.Popen(
                [str(bindir / "postgres"), "-D", str(datadir), "-k", str(datadir),
                 "-p", str(port), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                 "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
                user=PG_USER, group=PG_USER, cwd="/", stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = PgServer(bindir, datadir, port, proc.pid, 0.0)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    "postgres exited at start:\n" + (datadir / "server.log").read_text()
                )
            try:
                psycopg.connect(server.admin_dsn(), connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        server.startup_s = time.monotonic() - t0
        yield server
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(datadir, ignore_errors=True)


_db_numbers = itertools.count(1)


@pytest.fixture
def db_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database on the private server for each test (overrides the unit
    tests' SQLite ``db_url``)."""
    name = f"fate_test_{next(_db_numbers)}"
    with psycopg.connect(pg_server.admin_dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield pg_server.url(name)
    finally:
        with psycopg.connect(pg_server.admin_dsn(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --- PostgreSQL specifics ---------------------------------------------------------------------


def test_server_is_private_and_started_quickly(pg_server: PgServer) -> None:
    assert pg_server.datadir.name.startswith("fate-pg-")
    assert _alive(pg_server.pid)
    assert (pg_server.datadir / "postmaster.pid").read_text().split()[0] == str(pg_server.pid)
    print(f"\nPostgreSQL started in {pg_server.startup_s:.2f}s")  # shown with -s
    assert pg_server.startup_s < START_TIMEOUT_S


def test_schema_uses_jsonb_and_named_constraints(db: Database) -> None:
    insp = sa.inspect(db.engine)
    cols = {c["name"]: c["type"] for c in insp.get_columns("vnf_instances")}
    assert type(cols["config"]).__name__ == "JSONB"
    assert {c["name"] for c in insp.get_check_constraints("vnf_instances")} == {
        "ck_vnf_instances_desired_state", "ck_vnf_instances_actual_state",
    }
    assert {u["name"] for u in insp.get_unique_constraints("vnf_instances")} == {
        "uq_vnf_instances_node_name_owner_nf_name"
    }
    with db.engine.connect() as c:
        assert c.exec_driver_sql("SHOW server_version_num").scalar()


def test_concurrent_unique_insert_is_conflict(db: Database) -> None:
    """Two transactions race to create the same user. The second passes the repository's
    pre-check (the first is not committed yet) and waits on the unique key; when the first
    commits it gets Conflict, not a raw IntegrityError."""
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with db.session() as b:
                repo.create_user(b, "racer", "pw2")
        except BaseException as e:  # reported below
            errors.append(e)

    with db.session() as a:
        repo.create_user(a, "racer", "pw1")  # flushed, holds the key until commit
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.5)  # the second is blocked on the key by now
    t.join(timeout=10)
    assert len(errors) == 1 and isinstance(errors[0], Conflict), errors
    assert "user 'racer' already exists" in str(errors[0])
    with db.session() as session:
        assert repo.authenticate_user(session, "racer", "pw1") is not None


def test_migrate_takes_an_advisory_lock_so_replicas_migrate_once(db_url: str) -> None:
    """Several orchestrator replicas starting together: all succeed, one schema."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            migrate(db_url)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Database(db_url) as d:
        assert current_revision(d.engine) == head_revision()
