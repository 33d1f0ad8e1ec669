"""Indexes for look-ups that every association or page makes on tables that grow:
sessions by their IPv4 address (another user's active session on the address a user
associates with at the same node: the address changed hands, the one before goes idle), and
operation occurrences by start time and id (their pages, oldest or newest first, and the
UI's latest ones: an index range, not a sort of every occurrence ever recorded).

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
    op.create_index("ix_op_occs_start", "vnf_lcm_op_occs", ["start_time", "id"])


def downgrade() -> None:
    op.drop_index("ix_op_occs_start", table_name="vnf_lcm_op_occs")
    op.drop_index("ix_sessions_ip", table_name="sessions")
