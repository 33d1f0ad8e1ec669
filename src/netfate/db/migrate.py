"""Schema migrations with Alembic, run from code: no alembic.ini at runtime.

The Alembic environment ships inside the package (``netfate/db/migrations``). For the command
line during development, ``alembic_config(url)`` gives a Config to pass to ``alembic.command``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Engine

from netfate.db.session import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Held for the migration's transaction on PostgreSQL, so replicas starting together migrate once.
_PG_LOCK_KEY = 0x6E66_7669  # "nfvi"


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic Config for the packaged migrations. The URL goes in attributes, not the
    ini-style options, so passwords with '%' need no escaping."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.attributes["url"] = url
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations directory has no revisions"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def _alembic(target: str | URL | Engine, *, lock: bool) -> Iterator[Config]:
    """An Alembic config bound to one transaction on ``target``; an engine made from a URL
    is disposed of afterwards. ``lock``: serialise concurrent migrations (PostgreSQL)."""
    engine = target if isinstance(target, Engine) else make_engine(target)
    try:
        with engine.begin() as conn:
            if lock and conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            yield cfg
    finally:
        if engine is not target:
            engine.dispose()


def migrate(target: str | URL | Engine, revision: str = "head") -> None:
    """Upgrade the database at ``target`` (a URL or an engine) to ``revision``, in a transaction."""
    with _alembic(target, lock=True) as cfg:
        command.upgrade(cfg, revision)


def downgrade(target: str | URL | Engine, revision: str) -> None:
    """Downgrade to ``revision`` ("base" empties the schema). For tests and recovery."""
    with _alembic(target, lock=False) as cfg:
        command.downgrade(cfg, revision)
