"""Engine and sessions: SQLite in a state directory by default, PostgreSQL by URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from netfate.errors import InvalidInput

DB_FILE = "nfvi.db"
SQLITE_BUSY_TIMEOUT_S = 30.0


def default_state_dir() -> Path:
    """Persistent state (not /run, which is lost at reboot): the default of the
    orchestrator's state_dir setting (NETFATE_STATE_DIR is applied by the entry point)."""
    return Path("/var/lib/netfate")


def sqlite_url(state_dir: Path | str) -> str:
    """The URL of the SQLite database in a state directory."""
    return f"sqlite:///{Path(state_dir).absolute() / DB_FILE}"


def default_url() -> str:
    """SQLite in the default state dir (the orchestrator's settings give the real URL,
    e.g. postgresql+psycopg://... from NETFATE_DB_URL)."""
    return sqlite_url(default_state_dir())


def _parse(url: str | URL) -> URL:
    try:
        u = make_url(url)
    except sa.exc.ArgumentError as e:
        raise InvalidInput(f"database URL {str(url)!r} is not valid: {e}") from e
    if u.get_backend_name() not in ("sqlite", "postgresql"):
        raise InvalidInput(
            f"database URL {u.render_as_string(hide_password=True)!r}: "
            "use sqlite:///<path> or postgresql+psycopg://..."
        )
    if u.get_backend_name() == "postgresql" and u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")  # psycopg 3, not the default psycopg2
    return u


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # The driver's own transaction handling is off, so BEGIN below is the only one: this makes
    # savepoints and transactional DDL work (the SQLAlchemy docs' recipe for pysqlite).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    finally:
        cur.close()


def _sqlite_on_begin(conn: sa.Connection) -> None:
    # IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout instead of
    # one failing with "database is locked" when it upgrades a read transaction.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """An engine for SQLite (WAL, foreign keys on) or PostgreSQL (psycopg 3)."""
    u = _parse(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(u, echo=echo)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return sa.create_engine(u, echo=echo, pool_pre_ping=True)


class Database:
    """An engine and a session factory. Use ``with db.session() as s:`` for one transaction."""

    def __init__(self, url: str | URL | None = None, *, echo: bool = False) -> None:
        self.url = _parse(url if url is not None else default_url())
        self.engine = make_engine(self.url, echo=echo)
        # Objects stay readable after commit (and after the session closes).
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def create(cls, url: str | URL | None = None, *, echo: bool = False) -> Database:
        """Migrate the database to the newest schema, then open it."""
        from netfate.db.migrate import migrate

        db = cls(url, echo=echo)
        migrate(db.engine)
        return db

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits at the end of the block, or rolls back on error."""
        s = self._factory()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    def dispose(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.dispose()

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"
