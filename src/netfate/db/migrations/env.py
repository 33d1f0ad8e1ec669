"""Alembic environment for the NFVI database.

``netfate.db.migrate`` passes an open connection in ``config.attributes["connection"]``. The
alembic command line (``alembic_config(url)``) passes a URL in ``config.attributes["url"]``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from netfate.db.models import Base
from netfate.db.session import make_engine

config = context.config
target_metadata = Base.metadata


def default_url() -> str:
    """The alembic command line without a URL is an entry point: the orchestrator's
    database from the settings (NETFATE_DB_URL, else SQLite in NETFATE_STATE_DIR)."""
    from netfate.settings import load_settings

    return load_settings().orchestrator.database_url


def _run(conn: Connection) -> None:
    context.configure(
        connection=conn,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=conn.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(
        url=str(config.attributes.get("url") or default_url()),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:
        _run(conn)
        return
    engine = make_engine(config.attributes.get("url") or default_url())
    try:
        with engine.connect() as c:
            _run(c)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
