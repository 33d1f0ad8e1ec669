"""A node's administrative state: the operator marks it down (out of placement) or up.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as b:
        b.add_column(sa.Column("admin_down", sa.Boolean(), server_default=sa.false(),
                               nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as b:
        b.drop_column("admin_down")
