"""The NFVI database against a real PostgreSQL server: a private one on loopback, started for
this module from Debian's `postgresql` package and stopped by PID afterwards.

The backend-neutral tests of tests/unit/test_db.py run here unchanged: importing them into
this module makes pytest collect them again, with ``db_url`` below pointing at a fresh
PostgreSQL database for each test.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa

from netfate.db import Database, migrate, repo
from netfate.db.migrate import current_revision, head_revision
from netfate.db.pg_server import START_TIMEOUT_S, LocalPostgres
from netfate.db.pg_server import bindir as pg_bindir
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

PgServer = LocalPostgres


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def pg_server() -> Iterator[LocalPostgres]:
    if os.geteuid() != 0:
        pytest.skip("needs root: PostgreSQL runs as the 'postgres' OS user via runuser")
    if pg_bindir() is None:
        pytest.skip("PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb): "
                    "apt-get install postgresql")
    server = LocalPostgres.start()
    try:
        yield server
    finally:
        server.stop()


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
