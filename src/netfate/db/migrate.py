"""Schema migrations with Alembic, run from code: no alembic.ini at runtime.

The Alembic environment ships inside the package (``netfate/db/migrations``). For the command
line during development, ``alembic_config(url)`` gives a Config to pass to ``alembic.command``.
"""

from __future__ import annotations

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


def migrate(target: str | URL | Engine, revision: str = "head") -> None:
    """Upgrade the database at ``target`` (a URL or an engine) to ``revision``, in a transaction."""
    engine = target if isinstance(target, Engine) else make_engine(target)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        if engine is not target:
            engine.dispose()


def downgrade(target: str | URL | Engine, revision: str) -> None:
    """Downgrade to ``revision`` ("base" empties the schema). For tests and recovery."""
    engine = target if isinstance(target, Engine) else make_engine(target)
    try:
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, revision)
    finally:
        if engine is not target:
            engine.dispose()
