"""An NF instance the operator placed (a migration through the API or the UI) is pinned: the
placement policy keeps it where it is while it can serve its user from there, instead of
moving it back to the node it prefers at the next re-evaluation.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("vnf_instances") as b:
        b.add_column(sa.Column("pinned", sa.Boolean(), server_default=sa.false(),
                               nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("vnf_instances") as b:
        b.drop_column("pinned")
