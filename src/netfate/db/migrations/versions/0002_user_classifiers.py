"""Per-user traffic classifiers: which of a user's traffic crosses which of their NFs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("users") as b:
        b.add_column(sa.Column("classifiers", JSON, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("users") as b:
        b.drop_column("classifiers")
