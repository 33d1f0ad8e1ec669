"""PostgreSQL advisory locks for orchestrator replicas (issue #15), on one dedicated
connection per replica: the replica's liveness, its leadership and its plan locks are all
held by that session, so PostgreSQL releases every one of them when the replica dies (kill
-9 closes its socket) and never while it lives (PostgreSQL docs, "Advisory Locks" §13.3.5).

Session-level locks are re-entrant per session and counted: each successful try is matched
by one unlock. Only non-blocking tries are used (``pg_try_advisory_lock[_shared]``), so the
one connection never waits inside PostgreSQL while other tasks need it; callers poll.

    locks = await AdvisoryLocks.connect("postgresql+psycopg://netfate@db/netfate")
    if await locks.try_lock(key("leader")): ...
    await locks.unlock(key("leader"))

Errors: ``LockSessionLost`` once the connection is gone (every lock it held is then gone
too; the replica must stop acting on them)."""

from __future__ import annotations

import asyncio
import hashlib

import psycopg
from sqlalchemy.engine import make_url

from netfate.errors import InvalidInput, NetfateError

CONNECT_TIMEOUT_S = 5


class LockSessionLost(NetfateError):
    """The advisory-lock session's connection is gone, and every lock it held with it."""


def key(name: str) -> int:
    """A 64-bit signed lock key for ``name`` (sha256's first 8 bytes): PostgreSQL's
    ``pg_advisory_lock(bigint)``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def conninfo(url: str) -> str:
    """The libpq URL of a SQLAlchemy PostgreSQL URL (``postgresql+psycopg://…`` →
    ``postgresql://…``). InvalidInput for any other database."""
    u = make_url(url)
    if u.get_backend_name() != "postgresql":
        raise InvalidInput(f"advisory locks need PostgreSQL, not {u.get_backend_name()} "
                           f"({u.render_as_string(hide_password=True)})")
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


class AdvisoryLocks:
    """One replica's advisory-lock session."""

    def __init__(self, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        self._conn = conn
        self._use = asyncio.Lock()  # one statement at a time on the session
        self.lost = False

    @classmethod
    async def connect(cls, url: str, application_name: str = "netfate") -> AdvisoryLocks:
        conn: psycopg.AsyncConnection[tuple[object, ...]] = await psycopg.AsyncConnection.connect(
            conninfo(url), autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
            application_name=application_name[:63])
        return cls(conn)

    async def _one(self, sql: str, k: int) -> object:
        if self.lost:
            raise LockSessionLost("the advisory-lock session is gone")
        async with self._use:
            try:
                cur = await self._conn.execute(sql, (k,))
                row = await cur.fetchone()
            except psycopg.OperationalError as exc:
                self.lost = True
                raise LockSessionLost(f"the advisory-lock session is gone: {exc}") from exc
        return row[0] if row else None

    async def try_lock(self, k: int, shared: bool = False) -> bool:
        """Take lock ``k`` (shared or exclusive) if no other session holds it in a
        conflicting mode; whether it was taken."""
        fn = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
        return bool(await self._one(f"SELECT {fn}(%s)", k))

    async def unlock(self, k: int, shared: bool = False) -> bool:
        """Give back one hold of ``k``; whether this session held it."""
        fn = "pg_advisory_unlock_shared" if shared else "pg_advisory_unlock"
        return bool(await self._one(f"SELECT {fn}(%s)", k))

    async def ping(self) -> None:
        """LockSessionLost if the session is gone (checked by a round trip)."""
        await self._one("SELECT %s::bigint", 0)

    async def close(self) -> None:
        """Close the session: PostgreSQL releases every lock it held."""
        self.lost = True
        await self._conn.close()
