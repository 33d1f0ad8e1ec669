"""Engine and sessions: SQLite in a state directory by default, PostgreSQL by URL."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from netfate.errors import InvalidInput

log = logging.getLogger("netfate.db")

P = ParamSpec("P")
T = TypeVar("T")

DB_FILE = "nfvi.db"
# Worker threads of the async face: a few are enough (SQLite takes one writer at a time, and a
# PostgreSQL pool gives each thread its own connection); more would only queue on locks.
DB_THREADS = 4
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


def check_url(url: str | URL) -> None:
    """InvalidInput naming what is wrong when `url` is not a database URL NetFATE can use
    (SQLite or PostgreSQL); nothing is opened."""
    _parse(url)


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


READ_ONLY = "netfate_read_only"  # execution option of `Database.read`'s transactions


def _sqlite_on_begin(conn: sa.Connection) -> None:
    # IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout instead of
    # one failing with "database is locked" when it upgrades a read transaction. A read-only
    # transaction (`Database.read`) takes no lock: under WAL it reads its snapshot while a
    # writer writes, instead of queueing behind every writer.
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """An engine for SQLite (WAL, foreign keys on) or PostgreSQL (psycopg 3)."""
    u = _parse(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
            _private(Path(u.database))
        engine = sa.create_engine(u, echo=echo)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return sa.create_engine(u, echo=echo, pool_pre_ping=True)


def _private(db_file: Path) -> None:
    """The database file (and its -wal and -shm, which SQLite makes with the file's mode)
    readable by its owner only: it holds password hashes and the NFVI's whole state, and a
    package's check-config runs as nobody on the same machine."""
    fd = os.open(db_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for extra in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{db_file}{extra}", 0o600)


_warned: set[str] = set()


def warn_on_event_loop(where: str) -> None:
    """The default `Database.on_event_loop`: a warning, once per call site."""
    if where not in _warned:
        _warned.add(where)
        log.warning("database session opened on the event loop (use await db.run): %s", where)


def _call_site() -> str:
    """The innermost frame outside this module and contextlib."""
    for frame in reversed(traceback.extract_stack(limit=8)):
        if frame.filename not in (__file__, contextlib.__file__):
            return f"{frame.filename}:{frame.lineno} ({frame.name})"
    return "?"


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Database:
    """An engine and a session factory.

    Two faces, one transaction each: ``with db.session() as s:`` in synchronous code (sync
    FastAPI routes, which run in a thread pool; CLI; tests), and ``await db.run(fn, ...)`` in
    every ``async def``: the database is never called on the event loop, so a SQLite lock
    wait or a slow PostgreSQL query stalls one worker thread, not every bus handler."""

    def __init__(self, url: str | URL | None = None, *, echo: bool = False) -> None:
        self.url = _parse(url if url is not None else default_url())
        self.engine = make_engine(self.url, echo=echo)
        # Objects stay readable after commit (and after the session closes).
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        self._read_factory = sessionmaker(self.engine.execution_options(**{READ_ONLY: True}),
                                          expire_on_commit=False)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def call(self, fn: Callable[Concatenate[Session, P], T], *args: P.args,
             **kwargs: P.kwargs) -> T:
        """``fn(session, *args, **kwargs)`` in one transaction (committed when it returns,
        rolled back if it raises), on the calling thread (never an event loop's). What it
        returns should be plain data: ORM objects are detached once the session closes."""
        with self.session() as s:
            return fn(s, *args, **kwargs)

    async def run(self, fn: Callable[Concatenate[Session, P], T], *args: P.args,
                  **kwargs: P.kwargs) -> T:
        """`call` in one of the database's worker threads, awaited: the async face. Raises
        what `fn` raises (NotFound, Conflict...), after the rollback. A cancelled caller
        does not cancel the transaction: it completes (or rolls back) in its thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(),
                                          functools.partial(self.call, fn, *args, **kwargs))

    async def read(self, fn: Callable[Concatenate[Session, P], T], *args: P.args,
                   **kwargs: P.kwargs) -> T:
        """`run` for a function that only reads: one consistent snapshot, and on SQLite no
        write lock (it neither waits for writers nor holds them up). `fn` must not write."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), functools.partial(
            self._call_read, fn, *args, **kwargs))

    def _call_read(self, fn: Callable[Concatenate[Session, P], T], *args: P.args,
                   **kwargs: P.kwargs) -> T:
        with self.session(read_only=True) as s:
            return fn(s, *args, **kwargs)

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(DB_THREADS, thread_name_prefix="netfate-db")
            return self._pool

    @classmethod
    def create(cls, url: str | URL | None = None, *, echo: bool = False) -> Database:
        """Migrate the database to the newest schema, then open it."""
        from netfate.db.migrate import migrate

        db = cls(url, echo=echo)
        migrate(db.engine)
        return db

    # Called with the call site when `session` is used on a running event loop (it would stall
    # the loop); tests set it to collect such calls and fail on them.
    on_event_loop: ClassVar[Callable[[str], None]] = staticmethod(warn_on_event_loop)

    @contextlib.contextmanager
    def session(self, read_only: bool = False) -> Iterator[Session]:
        """A session whose transaction commits at the end of the block, or rolls back on error.
        `read_only`: see `read`."""
        if _on_event_loop():
            type(self).on_event_loop(_call_site())
        s = (self._read_factory if read_only else self._factory)()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    def dispose(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.dispose()

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"
