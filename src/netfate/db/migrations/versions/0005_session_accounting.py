"""RADIUS accounting and session limits on sessions: the login's Acct-Session-Id (kept when
the user roams), when the login began, and the Session-Timeout and Idle-Timeout of its
Access-Accept; and why the session ended (Acct-Terminate-Cause).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as b:
        b.add_column(sa.Column("acct_session_id", sa.String(), nullable=True))
        b.add_column(sa.Column("login_at", sa.Double(), nullable=True))
        b.add_column(sa.Column("session_timeout", sa.Integer(), nullable=True))
        b.add_column(sa.Column("idle_timeout", sa.Integer(), nullable=True))
        b.add_column(sa.Column("terminate_cause", sa.String(), nullable=True))
        b.create_index("ix_sessions_acct_session_id", ["acct_session_id"])


def downgrade() -> None:
    with op.batch_alter_table("sessions") as b:
        b.drop_index("ix_sessions_acct_session_id")
        b.drop_column("terminate_cause")
        b.drop_column("idle_timeout")
        b.drop_column("session_timeout")
        b.drop_column("login_at")
        b.drop_column("acct_session_id")
