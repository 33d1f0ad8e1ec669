"""The NFVI database: nodes, users (Table I), NF instances (Table II), steering rules
(Table III), the NF catalogue, notifications and lifecycle operations.

SQLAlchemy 2 models, Alembic migrations shipped in the package, SQLite by default and
PostgreSQL by URL::

    db = Database.create("sqlite:////var/lib/netfate/nfvi.db")  # migrates, then opens
    with db.session() as s:
        repo.upsert_node(s, "cpe1", role="cpe")
"""

from netfate.db.migrate import migrate
from netfate.db.session import Database, default_url, make_engine, sqlite_url

__all__ = ["Database", "default_url", "make_engine", "migrate", "sqlite_url"]
