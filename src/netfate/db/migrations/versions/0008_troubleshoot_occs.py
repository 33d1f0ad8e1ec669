"""Troubleshooting questions outlive the orchestrator's memory.

- ``troubleshoot_occs``: each question asked through the orchestrator, its state, start and
  end (unix s) and the occurrence as the API shows it (``doc``: target, probes, operation
  occurrences, steps, report, error).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "troubleshoot_occs",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("start_time", sa.Double(), nullable=False),
        sa.Column("end_time", sa.Double(), nullable=True),
        sa.Column("doc", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_troubleshoot_occs")),
    )
    op.create_index(op.f("ix_troubleshoot_occs_state"), "troubleshoot_occs", ["state"])
    op.create_index(op.f("ix_troubleshoot_occs_start_time"), "troubleshoot_occs",
                    ["start_time"])


def downgrade() -> None:
    op.drop_index(op.f("ix_troubleshoot_occs_start_time"), table_name="troubleshoot_occs")
    op.drop_index(op.f("ix_troubleshoot_occs_state"), table_name="troubleshoot_occs")
    op.drop_table("troubleshoot_occs")
