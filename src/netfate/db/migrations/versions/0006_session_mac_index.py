"""Sessions by device: MACs stored lower case, and an index on them, so finding the active
session on a device (every login and roam asks) is an index lookup, not a scan of every
session ever recorded.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(sa.text("UPDATE sessions SET mac = lower(mac) WHERE mac IS NOT NULL"))
    op.create_index("ix_sessions_mac", "sessions", ["mac"])


def downgrade() -> None:
    op.drop_index("ix_sessions_mac", table_name="sessions")
