"""AAA state that must outlive an orchestrator restart.

- ``acct_open``: each accounting session the orchestrator has open (RFC 2866): whether its
  Start was answered, when its last Interim-Update went, the switch counters it has read per
  node (the last reading and the baseline, so a restart neither restarts the totals from zero
  nor counts what came before the login) and the totals already reported. A row is removed
  once the Stop is answered, so a login that ended while the orchestrator was down still
  gets its Stop, with its totals.
- ``sessions.nfs_override``: the NFs a CoA-Request (RFC 5176) set for this login only; None:
  the user's stored ``required_nfs`` apply. Carried across roams with the Acct-Session-Id.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "acct_open",
        sa.Column("acct_session_id", sa.String(), nullable=False),
        sa.Column("user_name", sa.String(), nullable=False),
        sa.Column("nas_id", sa.String(), nullable=False),
        sa.Column("mac", sa.String(), nullable=True),
        sa.Column("ip", sa.String(), nullable=True),
        sa.Column("login_at", sa.Double(), nullable=False),
        sa.Column("started", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("last_interim", sa.Double(), nullable=False),
        sa.Column("meter", JSON, nullable=False),
        sa.Column("reported", JSON, nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("acct_session_id"),
    )
    with op.batch_alter_table("sessions") as b:
        b.add_column(sa.Column("nfs_override", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as b:
        b.drop_column("nfs_override")
    op.drop_table("acct_open")
