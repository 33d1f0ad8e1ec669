"""Sessions by address: an index on their IPv4 address, so finding another user's active
session on the address a user associates with at the same node (every association with an
address asks: the address changed hands, the one before goes idle) is an index lookup.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_sessions_ip", "sessions", ["ip"])


def downgrade() -> None:
    op.drop_index("ix_sessions_ip", table_name="sessions")
